// Package demo creates the demo targets: three PostgreSQL databases modelled on the deletion
// problems in CASES.md, filled by a deterministic, set-based generator.
//
// # Databases and tables
//
// <prefix>_app is a multi-tenant SaaS. Everything a tenant owns is reachable from tenants
// through foreign keys, so deleting a tenant is a real cascade:
//
//   - tenants, users (global identities), memberships (tenant_id, user_id: composite key).
//   - Code hosting (case 2, the soft delete that wasn't): repos (deleted_at; fork_parent_id is a
//     self-reference ON DELETE SET NULL, forks may live in other tenants), issues (deleted_at),
//     issue_comments (is_deleted; also tenant_id, CASCADE and deliberately unindexed),
//     issue_labels (composite key), proposals (no tombstone column: policy check reports it),
//     proposal_comments (deleted_at), collaborators (composite key; user_id RESTRICT),
//     webhooks (tenant_id declared without ON DELETE, i.e. NO ACTION) and webhook_deliveries
//     (composite FK (repo_id, webhook_id) to webhooks (repo_id, id)), branches (deleted_at),
//     commits and objects. commits are reached from repos directly and through branches, and
//     branches.head_commit_id (SET NULL) closes a cycle; proposals.head_branch_id is RESTRICT.
//   - Hosting (case 1, the orphaned store): merchants (shared, never tenant-owned; stores refer
//     to them with RESTRICT), stores (subdomain unique WHERE deleted_at IS NULL), hosted_sites
//     (store_id points up to the store the site created, RESTRICT), store_themes, content_pages
//     (theme_id SET NULL: a diamond under stores), store_platforms (composite key).
//     acme-shop and acme-shop-eu share one store; initech-shop is an orphaned store with no site;
//     some tenants keep a tombstoned store whose subdomain a live store reuses.
//   - storage_options (case 4): a warehouse > zone > aisle > shelf tree per tenant, parent_id
//     RESTRICT, tenant_id CASCADE, so a tenant's whole tree goes at once.
//
// PostgreSQL's own DELETE of a tenant fails on webhooks_tenant_id_fkey: that NO ACTION check
// runs before the cascade through repos has reached the webhooks. The example policy
// (examples/tombstone.yaml) handles it with an edge rule. The other RESTRICT edges inside the
// cascade (hosted_sites.store_id, proposals.head_branch_id, storage_options.parent_id) do not
// block it, because the rows they guard are deleted through a shorter path or in the same
// statement.
//
// <prefix>_pos (pos_configurations, pos_sessions, pos_transactions) and <prefix>_alerts
// (alert_rules, alerts, alert_history, alert_notifications) stand for separate services (case 3).
// Their rows name a tenant of <prefix>_app by tenant_id, with no foreign key across databases;
// pos_sessions.tenant_id and alert_history.tenant_id have no index. Inside each database the
// foreign keys cascade, with a RESTRICT self-reference (pos_transactions.refund_of_id) and a SET
// NULL (alert_notifications.alert_id).
//
// # Data
//
// At Scale 1 there are 50 tenants (acme, globex, initech, ... then generated ones such as
// northwind-labs-31), 500 users and about 96k rows in all: 77k in app (objects 37k,
// issue_comments 16k, commits 6k, issue_labels 3.7k, issues 3.2k, webhook_deliveries 2.9k,
// storage_options 2.2k, the rest below 2k each), 12k in pos (mostly pos_transactions) and 7k in
// alerts. The number of tenants grows with Scale (at least 5); the size of each tenant does not.
// Options.BigTenantRows adds one more tenant, bigco, owning about that many rows across the
// three databases (at least about 2k), mostly under its eight repos, for benchmarks up to 10M
// rows.
//
// Every value is derived in SQL from hashes of (Seed, row id), so the same Seed, Scale and
// BigTenantRows give exactly the same rows. About 5% of repos, issues and comments, 10% of
// branches, one named tenant (soylent) and some generated tenants are already tombstoned.
package demo

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"regexp"
	"sync"

	"github.com/tombstone-console/tombstone/internal/pg"
)

// Targets are the demo targets, in the order Setup builds them; database <prefix>_<target>
// holds each.
var Targets = []string{"app", "pos", "alerts"}

// DefaultPrefix names the demo databases demo_app, demo_pos and demo_alerts.
const DefaultPrefix = "demo"

// Options say where and how big the demo targets are. The zero value (plus AdminURL) is the
// default demo: prefix "demo", seed 0, scale 1.
type Options struct {
	// AdminURL is a postgres:// URL of the server's maintenance database, e.g.
	// postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable. Its user must be allowed to
	// create and drop databases. The demo databases are reached with the same URL and another
	// database name.
	AdminURL string
	// Prefix names the databases <Prefix>_app, <Prefix>_pos and <Prefix>_alerts: lower-case
	// letters, digits and underscores, starting with a letter. Empty means "demo".
	Prefix string
	// Seed selects the data; the same Seed gives the same rows.
	Seed int64
	// Scale multiplies the number of tenants: 1 (or 0) is about 50 tenants and 100k rows.
	Scale float64
	// BigTenantRows, when above zero, adds the tenant bigco owning about that many rows.
	BigTenantRows int64
}

// Result says what Setup built.
type Result struct {
	// Databases maps a target name ("app", "pos", "alerts") to its database URL.
	Databases map[string]string
	// Rows maps "target.schema.table" (e.g. "app.public.tenants") to its exact row count.
	Rows map[string]int64
}

// EnvVars returns the environment the example policy expects for the demo targets:
// DEMO_APP_URL, DEMO_POS_URL and DEMO_ALERTS_URL.
func (r *Result) EnvVars() map[string]string {
	return map[string]string{
		"DEMO_APP_URL":    r.Databases["app"],
		"DEMO_POS_URL":    r.Databases["pos"],
		"DEMO_ALERTS_URL": r.Databases["alerts"],
	}
}

// Total returns the number of rows in all demo tables.
func (r *Result) Total() int64 {
	var n int64
	for _, c := range r.Rows {
		n += c
	}
	return n
}

// Sizing constants. bigco's weight is chosen so that bigBaseRows + weight*rowsPerBigWeight is
// BigTenantRows; both numbers were measured on the generator itself (1M asked gives 1.0M).
const (
	tenantsAtScale1  = 50
	minTenants       = 5
	usersPerTenant   = 10
	minUsers         = 200
	merchantsPerTen  = 4 // merchants per ten tenants
	minMerchants     = 8
	maxBigTenantRows = 100_000_000
	rowsPerBigWeight = 4090.0
	bigBaseRows      = 1800.0
	maxTenants       = 100_000
)

var prefixRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,40}$`)

// Setup drops and recreates the three demo databases, creates their schemas, generates the data
// and analyses it. It is idempotent: running it again gives the same databases with the same
// rows. Connections to the old databases are terminated (DROP DATABASE ... WITH (FORCE)). Two
// Setups with the same prefix must not run at once.
func Setup(ctx context.Context, opts Options) (res *Result, err error) {
	defer func() { pg.Wrap(&err, "demo.Setup(%q)", opts.Prefix) }()
	opts, err = opts.normalize()
	if err != nil {
		return nil, err
	}
	admin, err := pg.Open(ctx, opts.AdminURL, pg.Options{MaxConns: 2, ApplicationName: "tombstone demo"})
	if err != nil {
		return nil, err
	}
	defer admin.Close()

	res = &Result{Databases: map[string]string{}, Rows: map[string]int64{}}
	for _, target := range Targets {
		name := DatabaseName(opts.Prefix, target)
		if err := recreate(ctx, admin, name); err != nil {
			return nil, err
		}
		res.Databases[target], err = databaseURL(opts.AdminURL, name)
		if err != nil {
			return nil, err
		}
	}

	args := opts.sqlArgs()
	// The app database takes most of the time; the two small services are built alongside it.
	var wg sync.WaitGroup
	errs := make([]error, len(Targets))
	counts := make([]map[string]int64, len(Targets))
	for i, target := range Targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			counts[i], errs[i] = build(ctx, target, res.Databases[target], args)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, c := range counts {
		for k, v := range c {
			res.Rows[k] = v
		}
	}
	return res, nil
}

// Drop removes the demo databases of prefix, terminating their connections. Missing databases
// are not an error.
func Drop(ctx context.Context, adminURL, prefix string) (err error) {
	defer pg.Wrap(&err, "demo.Drop(%q)", prefix)
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if !prefixRE.MatchString(prefix) {
		return fmt.Errorf("prefix must be lower-case letters, digits and _, starting with a letter, got %q", prefix)
	}
	admin, err := pg.Open(ctx, adminURL, pg.Options{MaxConns: 1, ApplicationName: "tombstone demo"})
	if err != nil {
		return err
	}
	defer admin.Close()
	for _, target := range Targets {
		if _, err := admin.Pool.Exec(ctx, "DROP DATABASE IF EXISTS "+pg.QuoteIdent(DatabaseName(prefix, target))+" WITH (FORCE)"); err != nil {
			return err
		}
	}
	return nil
}

// DatabaseName is the name of a demo target's database.
func DatabaseName(prefix, target string) string { return prefix + "_" + target }

func (o Options) normalize() (Options, error) {
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if !prefixRE.MatchString(o.Prefix) {
		return o, fmt.Errorf("prefix must be lower-case letters, digits and _, starting with a letter, got %q", o.Prefix)
	}
	if o.Scale == 0 {
		o.Scale = 1
	}
	if o.Scale < 0 || math.IsNaN(o.Scale) || math.IsInf(o.Scale, 0) || o.Scale*tenantsAtScale1 > maxTenants {
		return o, fmt.Errorf("scale must be above zero and at most %d, got %g", maxTenants/tenantsAtScale1, o.Scale)
	}
	if o.BigTenantRows < 0 || o.BigTenantRows > maxBigTenantRows {
		return o, fmt.Errorf("big tenant rows must be between 0 and %d, got %d", int64(maxBigTenantRows), o.BigTenantRows)
	}
	if o.AdminURL == "" {
		return o, errors.New("an admin database URL is needed (e.g. postgres://postgres@127.0.0.1:5432/postgres)")
	}
	if _, err := databaseURL(o.AdminURL, o.Prefix); err != nil {
		return o, err
	}
	return o, nil
}

// sqlArgs are the generator's parameters, the same for the three databases so that they agree
// on the tenants.
func (o Options) sqlArgs() map[string]any {
	tenants := max(minTenants, int64(math.Round(o.Scale*tenantsAtScale1)))
	bigW := 0.0
	if o.BigTenantRows > 0 {
		bigW = max(0.05, (float64(o.BigTenantRows)-bigBaseRows)/rowsPerBigWeight)
	}
	return map[string]any{
		"seed":      o.Seed,
		"tenants":   tenants,
		"users":     max(minUsers, usersPerTenant*tenants),
		"merchants": max(minMerchants, merchantsPerTen*tenants/10),
		"big_w":     bigW,
	}
}

// databaseURL returns adminURL with its database name replaced.
func databaseURL(adminURL, name string) (string, error) {
	u, err := url.Parse(adminURL)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return "", fmt.Errorf("the admin database must be given as a postgres:// URL")
	}
	u.Path = "/" + name
	u.RawPath = ""
	return u.String(), nil
}

func recreate(ctx context.Context, admin *pg.DB, name string) error {
	if _, err := admin.Pool.Exec(ctx, "DROP DATABASE IF EXISTS "+pg.QuoteIdent(name)+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	if _, err := admin.Pool.Exec(ctx, "CREATE DATABASE "+pg.QuoteIdent(name)); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}
