package rdslocal

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// passwordLimits returns the length limits RDS documents for
// MasterUserPassword: for an instance by engine (MariaDB and MySQL 8 to 41,
// PostgreSQL 8 to 128), for a cluster (Aurora and Multi-AZ DB clusters) 8 to 41.
func passwordLimits(engine string, cluster bool) (minLen, maxLen int) {
	if cluster {
		return 8, 41
	}
	switch engine {
	case "postgres":
		return 8, 128
	case "sqlserver-ee", "sqlserver-se", "sqlserver-ex", "sqlserver-web":
		return 8, 128
	case "oracle-ee", "oracle-se2", "oracle-ee-cdb", "oracle-se2-cdb":
		return 8, 30
	}
	return 8, 41 // mysql, mariadb
}

// checkPassword applies RDS's rules for MasterUserPassword: printable ASCII
// but '/', '"', '@' and space, and the engine's length. The message, like
// RDS's, never quotes the password.
func checkPassword(pw, engine string, cluster bool) string {
	for _, r := range pw {
		if r < 0x21 || r > 0x7e || r == '/' || r == '"' || r == '@' {
			return "The parameter MasterUserPassword is not a valid password. Only printable ASCII characters besides '/', '@', '\"', ' ' may be used."
		}
	}
	minLen, maxLen := passwordLimits(engine, cluster)
	if n := len(pw); n < minLen || n > maxLen {
		return fmt.Sprintf("The parameter MasterUserPassword is not a valid password because it is %d characters long; it must contain from %d to %d characters.", n, minLen, maxLen)
	}
	return ""
}

func (s *Server) instanceXML(i Instance) xmlInstance {
	st := s.stateOf("db:" + i.Identifier)
	x := xmlInstance{
		DBInstanceIdentifier: i.Identifier, DBInstanceArn: i.ARN, Engine: i.Engine, DBInstanceStatus: "available",
		MasterUsername: i.MasterUsername, Endpoint: &endpoint{Address: i.Address, Port: i.Port},
		DbInstancePort: 0, DBClusterIdentifier: i.ClusterIdentifier, PendingModifiedValues: &pendingValues{},
	}
	if st.shown() {
		x.DBInstanceStatus = StatusResetting
		x.PendingModifiedValues.MasterUserPassword = "****"
	}
	if i.MasterUserSecretARN != "" {
		x.MasterUserSecret = &masterUserSecret{SecretArn: i.MasterUserSecretARN, SecretStatus: "active", KmsKeyID: "alias/aws/secretsmanager"}
	}
	return x
}

func (s *Server) clusterXML(c Cluster) xmlCluster {
	st := s.stateOf("cluster:" + c.Identifier)
	x := xmlCluster{
		DBClusterIdentifier: c.Identifier, DBClusterArn: c.ARN, Engine: c.Engine, Status: "available",
		MasterUsername: c.MasterUsername, Endpoint: c.Endpoint, ReaderEndpoint: c.ReaderEndpoint, Port: c.Port,
	}
	if st.shown() {
		x.Status = StatusResetting
		x.PendingModifiedValues = &pendingValues{MasterUserPassword: "****"}
	}
	if c.MasterUserSecretARN != "" {
		x.MasterUserSecret = &masterUserSecret{SecretArn: c.MasterUserSecretARN, SecretStatus: "active", KmsKeyID: "alias/aws/secretsmanager"}
	}
	return x
}

// modification is what a Modify call asks of the master password.
type modification struct {
	password    string
	hasPassword bool
	managed     string // ManageMasterUserPassword as sent, "" when absent
}

func parseModification(form url.Values) modification {
	m := modification{managed: strings.ToLower(form.Get("ManageMasterUserPassword"))}
	if _, ok := form["MasterUserPassword"]; ok {
		m.password, m.hasPassword = form.Get("MasterUserPassword"), true
	}
	return m
}

// check answers the errors RDS documents for a master password change;
// "" code means the request may go ahead.
func (m modification) check(kind, id, engine, secretARN string, pending, cluster bool) (int, string, string) {
	if !m.hasPassword {
		return 0, "", ""
	}
	switch {
	case m.managed == "true":
		return http.StatusBadRequest, "InvalidParameterCombination", "You can't specify both MasterUserPassword and ManageMasterUserPassword."
	case secretARN != "" && m.managed != "false":
		return http.StatusBadRequest, "InvalidParameterCombination", fmt.Sprintf("You can't specify MasterUserPassword for %s %s because RDS manages its master user password in Secrets Manager (ManageMasterUserPassword is turned on).", kind, id)
	}
	if msg := checkPassword(m.password, engine, cluster); msg != "" {
		return http.StatusBadRequest, "InvalidParameterValue", msg
	}
	if pending {
		code := "InvalidDBInstanceState"
		if cluster {
			code = "InvalidDBClusterStateFault"
		}
		return http.StatusBadRequest, code, fmt.Sprintf("%s %s is not in the available state (it is %s): a master user password change is already being applied.", kind, id, StatusResetting)
	}
	return 0, "", ""
}

func (s *Server) modifyInstance(w http.ResponseWriter, form url.Values) {
	id := form.Get("DBInstanceIdentifier")
	if id == "" {
		writeError(w, http.StatusBadRequest, "MissingParameter", "The request must contain the parameter DBInstanceIdentifier.")
		return
	}
	m := parseModification(form)
	s.mu.Lock()
	defer s.mu.Unlock()
	i, ok := s.instances[id]
	if !ok {
		writeError(w, http.StatusNotFound, "DBInstanceNotFound", fmt.Sprintf("DBInstance %s not found.", id))
		return
	}
	if m.hasPassword && i.ClusterIdentifier != "" {
		writeError(w, http.StatusBadRequest, "InvalidParameterCombination", "The requested DB Instance will be a member of a DB Cluster. Set master user password for the DB Cluster.")
		return
	}
	st := s.stateOf("db:" + id)
	if status, code, msg := m.check("DB instance", id, i.Engine, i.MasterUserSecretARN, st.pending, false); code != "" {
		writeError(w, status, code, msg)
		return
	}
	if m.hasPassword {
		if i.SetMasterPassword == nil {
			writeError(w, http.StatusInternalServerError, "InternalFailure", fmt.Sprintf("the local RDS stand-in has no database server behind DB instance %s to change the master password on", id))
			return
		}
		s.startApply(st, "DB instance "+id, i.SetMasterPassword, m.password)
	}
	x := s.instanceXML(i)
	if st.pending {
		// The Modify answer shows the change, whatever the Describe calls lag.
		x.DBInstanceStatus, x.PendingModifiedValues.MasterUserPassword = StatusResetting, "****"
	}
	writeXML(w, http.StatusOK, modifyInstanceResponse{Xmlns: xmlns, Result: x, Metadata: responseMetadata{RequestID: requestID()}})
}

func (s *Server) modifyCluster(w http.ResponseWriter, form url.Values) {
	id := form.Get("DBClusterIdentifier")
	if id == "" {
		writeError(w, http.StatusBadRequest, "MissingParameter", "The request must contain the parameter DBClusterIdentifier.")
		return
	}
	m := parseModification(form)
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.clusters[id]
	if !ok {
		writeError(w, http.StatusNotFound, "DBClusterNotFoundFault", fmt.Sprintf("DBCluster %s not found.", id))
		return
	}
	st := s.stateOf("cluster:" + id)
	if status, code, msg := m.check("DB cluster", id, c.Engine, c.MasterUserSecretARN, st.pending, true); code != "" {
		writeError(w, status, code, msg)
		return
	}
	if m.hasPassword {
		if c.SetMasterPassword == nil {
			writeError(w, http.StatusInternalServerError, "InternalFailure", fmt.Sprintf("the local RDS stand-in has no database server behind DB cluster %s to change the master password on", id))
			return
		}
		s.startApply(st, "DB cluster "+id, c.SetMasterPassword, m.password)
	}
	x := s.clusterXML(c)
	if st.pending {
		x.Status, x.PendingModifiedValues = StatusResetting, &pendingValues{MasterUserPassword: "****"}
	}
	writeXML(w, http.StatusOK, modifyClusterResponse{Xmlns: xmlns, Result: x, Metadata: responseMetadata{RequestID: requestID()}})
}

// shown says whether the Describe calls show a change being applied.
func (st *modState) shown() bool { return st.pending && !time.Now().Before(st.shownAt) }

// startApply marks the change pending and applies it after the describe
// lag and the apply delay, as RDS does asynchronously. s.mu is held.
func (s *Server) startApply(st *modState, what string, set func(context.Context, string) error, password string) {
	st.pending = true
	st.shownAt = time.Now().Add(s.lag)
	delay := s.lag + s.applyDelay
	s.applies.Add(1)
	go func() {
		defer s.applies.Done()
		time.Sleep(delay)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		err := set(ctx, password)
		s.mu.Lock()
		defer s.mu.Unlock()
		st.pending = false
		st.applied++
		st.err = err
		if err != nil {
			s.applyErrs = append(s.applyErrs, fmt.Errorf("apply the master password of %s: %w", what, err))
		}
	}()
}
