package smlocal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rotary-secrets/rotary/pkg/jsontext"
)

const stateVersion = 1

type stateFile struct {
	Version int `json:"version"`
	*state
}

// loadState reads a state file; a missing file is an empty state (nil).
func loadState(path string) (*state, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("smlocal: read state file %s: %w", path, err)
	}
	f := stateFile{state: &state{}}
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("smlocal: state file %s is not valid: %s; remove it to start empty", path, jsontext.ErrorText(err))
	}
	if f.Version != stateVersion {
		return nil, fmt.Errorf("smlocal: state file %s has version %d, want %d; remove it to start empty", path, f.Version, stateVersion)
	}
	if f.Secrets == nil {
		f.Secrets = map[string]*storedSecret{}
	}
	for _, sec := range f.Secrets {
		if sec.Versions == nil {
			sec.Versions = map[string]*storedVersion{}
		}
		if sec.Labels == nil {
			sec.Labels = map[string]string{}
		}
	}
	return f.state, nil
}

// saveLocked writes the state file atomically (temporary file, fsync,
// rename). The caller holds s.mu. The file is readable by its owner only,
// since it holds secret values.
func (s *Server) saveLocked() error {
	path := s.opts.StateFile
	if path == "" {
		return nil
	}
	b, err := json.Marshal(stateFile{Version: stateVersion, state: s.st})
	if err != nil {
		return fmt.Errorf("smlocal: encode state: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("smlocal: write state file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("smlocal: write state file: %w", err)
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return fmt.Errorf("smlocal: write state file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("smlocal: write state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("smlocal: write state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("smlocal: replace state file %s: %w", path, err)
	}
	return nil
}

// commitLocked saves a change; a failure is an InternalServiceError. It
// also wakes the rotations the change abandoned (see wakeAbandonedLocked).
func (s *Server) commitLocked() error {
	s.wakeAbandonedLocked()
	if err := s.saveLocked(); err != nil {
		s.log.Error("smlocal: save state", "err", err)
		return &apiError{Type: excInternal, Message: err.Error()}
	}
	return nil
}
