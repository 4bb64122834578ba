package cluster

import (
	"fmt"
	"os"
	"path/filepath"
)

// Restart restarts the server and waits until it accepts connections again, on the same port
// with the same settings. With immediate it is `pg_ctl restart -m immediate`: every backend is
// killed without a checkpoint and the server goes through crash recovery, as after a power
// cut of the server alone; otherwise it is a fast shutdown (open transactions roll back).
// Either way every connection is cut. Restart also starts a server Halt stopped.
func (c *Cluster) Restart(immediate bool) error {
	out, err := c.cmd("pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-m", mode(immediate),
		"-l", filepath.Join(c.Dir, "log"), "-w", "-t", "60", "restart").CombinedOutput()
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(c.Dir, "log"))
		return fmt.Errorf("cluster: pg_ctl restart: %v: %s\n%s", err, out, log)
	}
	return nil
}

// Halt stops the server and keeps its files, so that Restart can start it again; until then
// connections are refused. Stop still removes everything.
func (c *Cluster) Halt(immediate bool) error {
	out, err := c.cmd("pg_ctl", "-D", filepath.Join(c.Dir, "data"), "-m", mode(immediate), "-w", "-t", "60", "stop").CombinedOutput()
	if err != nil {
		return fmt.Errorf("cluster: pg_ctl stop: %v: %s", err, out)
	}
	return nil
}

func mode(immediate bool) string {
	if immediate {
		return "immediate"
	}
	return "fast"
}
