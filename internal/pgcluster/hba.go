package pgcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// Markers around the rules PrependHBA puts ahead of the cluster's own.
const (
	hbaBegin = "# pgcluster PrependHBA: begin\n"
	hbaEnd   = "# pgcluster PrependHBA: end\n"
)

// hbaMu serializes PrependHBA: each call rewrites the whole file.
var hbaMu sync.Mutex

// PrependHBA puts lines (pg_hba.conf records, such as
// `host all "app" 127.0.0.1/32 reject`) ahead of the cluster's own rules,
// replacing those of the previous call, and reloads the configuration. It
// returns once new sessions are authenticated by the new rules: existing
// sessions are not affected, as with any reload. No lines restores the
// cluster's own rules. A line the server rejects fails the call and leaves
// the rules in force unchanged. Calls are serialized.
func (c *Cluster) PrependHBA(ctx context.Context, lines ...string) error {
	hbaMu.Lock()
	defer hbaMu.Unlock()
	path := filepath.Join(c.data, "pg_hba.conf")
	old, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("prepend pg_hba.conf rules: %w", err)
	}
	own := string(old)
	if i := strings.Index(own, hbaBegin); i >= 0 {
		if j := strings.Index(own, hbaEnd); j > i {
			own = own[:i] + own[j+len(hbaEnd):]
		}
	}
	content := own
	if len(lines) > 0 {
		content = hbaBegin + strings.Join(lines, "\n") + "\n" + hbaEnd + own
	}
	admin, err := c.ConnectAdmin(ctx, "")
	if err != nil {
		return fmt.Errorf("prepend pg_hba.conf rules: %w", err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	var before time.Time
	if err := admin.QueryRow(ctx, "SELECT pg_conf_load_time()").Scan(&before); err != nil {
		return fmt.Errorf("prepend pg_hba.conf rules: read the configuration's load time: %w", err)
	}
	if err := c.writeHBA(path, content); err != nil {
		return err
	}
	// pg_hba_file_rules parses the file as it is on disk now.
	var bad int
	var first string
	if err := admin.QueryRow(ctx, "SELECT count(*), coalesce(min(line_number || ': ' || error), '') FROM pg_hba_file_rules WHERE error IS NOT NULL").Scan(&bad, &first); err != nil {
		_ = c.writeHBA(path, string(old))
		return fmt.Errorf("prepend pg_hba.conf rules: check the new file: %w", err)
	}
	if bad > 0 {
		_ = c.writeHBA(path, string(old))
		return fmt.Errorf("prepend pg_hba.conf rules: the server rejects %d line(s) (line %s); nothing changed", bad, first)
	}
	if _, err := admin.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return fmt.Errorf("prepend pg_hba.conf rules: reload: %w", err)
	}
	// The postmaster reads pg_hba.conf when it reloads; a session started
	// after that reports the new load time.
	for {
		loaded, err := c.loadTime(ctx)
		if err != nil {
			return fmt.Errorf("prepend pg_hba.conf rules: wait for the reload: %w", err)
		}
		if loaded.After(before) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("prepend pg_hba.conf rules: wait for the reload: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// writeHBA replaces pg_hba.conf atomically, owned by the server's user.
func (c *Cluster) writeHBA(path, content string) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		return fmt.Errorf("prepend pg_hba.conf rules: %w", err)
	}
	if err := c.chown(tmp); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("prepend pg_hba.conf rules: %w", err)
	}
	return nil
}

// loadTime is pg_conf_load_time() as a new session sees it.
func (c *Cluster) loadTime(ctx context.Context) (time.Time, error) {
	conn, err := c.ConnectAdmin(ctx, "")
	if err != nil {
		return time.Time{}, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var t time.Time
	err = conn.QueryRow(ctx, "SELECT pg_conf_load_time()").Scan(&t)
	return t, err
}
