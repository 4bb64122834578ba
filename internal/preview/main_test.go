package preview_test

import (
	"testing"

	"github.com/tombstone-console/tombstone/internal/pg/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
