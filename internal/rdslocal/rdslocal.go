// Package rdslocal is a local stand-in for the RDS API calls Rotary makes,
// DescribeDBInstances and DescribeDBClusters, and ModifyDBInstance and
// ModifyDBCluster with MasterUserPassword, speaking the AWS query protocol
// (form-encoded requests, XML responses) so the real aws-sdk-go-v2 RDS client
// can talk to it in tests and the demo.
//
// A master password change is applied as RDS applies it: asynchronously.
// ModifyDBInstance (ModifyDBCluster) answers at once with the status
// "resetting-master-credentials" and PendingModifiedValues.MasterUserPassword
// "****"; after the server's apply delay the stand-in really changes the
// password on the database server (Instance.SetMasterPassword, which the
// tests point at a throwaway PostgreSQL or MariaDB server), and the
// instance is "available" again with nothing pending.
package rdslocal

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"
)

const xmlns = "http://rds.amazonaws.com/doc/2014-10-31/"

// Instance is a DB instance as DescribeDBInstances reports it.
type Instance struct {
	Identifier        string // DBInstanceIdentifier, such as "orders-db"
	ARN               string // empty means InstanceARN(Identifier)
	Engine            string // such as "postgres"
	Address           string // Endpoint.Address
	Port              int    // Endpoint.Port
	ClusterIdentifier string // DBClusterIdentifier for Aurora instances
	MasterUsername    string
	// MasterUserSecretARN, when set, says RDS manages the master password
	// (ManageMasterUserPassword): DescribeDBInstances reports MasterUserSecret,
	// and ModifyDBInstance with MasterUserPassword is refused.
	MasterUserSecretARN string
	// SetMasterPassword changes the master user's password on the database
	// server; the stand-in calls it when a ModifyDBInstance with
	// MasterUserPassword is applied. Nil refuses such a ModifyDBInstance
	// (the stand-in has no server to act on).
	SetMasterPassword func(ctx context.Context, password string) error
}

// Cluster is a DB cluster as DescribeDBClusters reports it.
type Cluster struct {
	Identifier     string // DBClusterIdentifier
	ARN            string // empty means ClusterARN(Identifier)
	Engine         string // such as "aurora-postgresql"
	Endpoint       string // the writer endpoint
	ReaderEndpoint string
	Port           int
	MasterUsername string
	// MasterUserSecretARN and SetMasterPassword are as for Instance, for
	// ModifyDBCluster.
	MasterUserSecretARN string
	SetMasterPassword   func(ctx context.Context, password string) error
}

// InstanceARN is the ARN the stand-in gives an instance without one.
func InstanceARN(id string) string { return "arn:aws:rds:us-east-1:123456789012:db:" + id }

// ClusterARN is the ARN the stand-in gives a cluster without one.
func ClusterARN(id string) string { return "arn:aws:rds:us-east-1:123456789012:cluster:" + id }

// Server serves the RDS API at "/". It is an http.Handler: serve it with
// httptest.NewServer and point the SDK's BaseEndpoint (or the environment
// variable AWS_ENDPOINT_URL_RDS) at it. Safe for concurrent use.
type Server struct {
	mu        sync.Mutex
	instances map[string]Instance
	clusters  map[string]Cluster
	// state is the modification state of each instance ("db:<id>") and
	// cluster ("cluster:<id>").
	state      map[string]*modState
	calls      []string
	applyDelay time.Duration
	lag        time.Duration
	applies    sync.WaitGroup
	applyErrs  []error
}

// modState is an instance's or cluster's master password modification.
type modState struct {
	pending bool // a MasterUserPassword modification is being applied
	// shownAt is when the Describe calls start showing the pending
	// modification (see SetDescribeLag).
	shownAt time.Time
	applied int   // how many were applied
	err     error // the last apply's error
}

// DefaultApplyDelay is how long the stand-in takes to apply a master
// password change unless SetApplyDelay says otherwise. RDS takes from
// seconds to minutes.
const DefaultApplyDelay = 200 * time.Millisecond

// StatusResetting is the status of an instance or cluster while a new
// master password is being applied.
const StatusResetting = "resetting-master-credentials"

// New returns a Server with no instances or clusters.
func New() *Server {
	return &Server{instances: map[string]Instance{}, clusters: map[string]Cluster{}, state: map[string]*modState{}, applyDelay: DefaultApplyDelay}
}

// SetApplyDelay sets how long a master password change takes to apply.
func (s *Server) SetApplyDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applyDelay = d
}

// SetDescribeLag makes the Describe calls lag the Modify calls, as RDS's
// eventually consistent API may: for d after a ModifyDBInstance
// (ModifyDBCluster) that RDS accepted, DescribeDBInstances
// (DescribeDBClusters) still shows the database as it was, available with
// nothing pending; then the change shows for the apply delay, and then it
// is applied. Another Modify meanwhile is refused as busy, as RDS refuses
// it. Zero (the default) shows the change at once.
func (s *Server) SetDescribeLag(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lag = d
}

// Wait waits until every master password change in flight is applied and
// returns the errors of those whose SetMasterPassword failed so far.
func (s *Server) Wait() []error {
	s.applies.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]error(nil), s.applyErrs...)
}

// Applied returns how many master password changes were applied to the
// instance (or cluster) id.
func (s *Server) Applied(id string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, k := range []string{"db:" + id, "cluster:" + id} {
		if st := s.state[k]; st != nil {
			n += st.applied
		}
	}
	return n
}

func (s *Server) stateOf(key string) *modState {
	st := s.state[key]
	if st == nil {
		st = &modState{}
		s.state[key] = st
	}
	return st
}

// AddInstance adds or replaces an instance.
func (s *Server) AddInstance(i Instance) {
	if i.ARN == "" {
		i.ARN = InstanceARN(i.Identifier)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.instances[i.Identifier] = i
}

// AddCluster adds or replaces a cluster.
func (s *Server) AddCluster(c Cluster) {
	if c.ARN == "" {
		c.ARN = ClusterARN(c.Identifier)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.clusters[c.Identifier] = c
}

// Calls returns the actions served so far, such as "DescribeDBInstances".
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

type endpoint struct {
	Address string `xml:"Address"`
	Port    int    `xml:"Port"`
}

type pendingValues struct {
	MasterUserPassword string `xml:"MasterUserPassword,omitempty"`
}

type masterUserSecret struct {
	SecretArn    string `xml:"SecretArn"`
	SecretStatus string `xml:"SecretStatus"`
	KmsKeyID     string `xml:"KmsKeyId"`
}

type xmlInstance struct {
	DBInstanceIdentifier  string            `xml:"DBInstanceIdentifier"`
	DBInstanceArn         string            `xml:"DBInstanceArn"`
	Engine                string            `xml:"Engine"`
	DBInstanceStatus      string            `xml:"DBInstanceStatus"`
	MasterUsername        string            `xml:"MasterUsername,omitempty"`
	Endpoint              *endpoint         `xml:"Endpoint"`
	DbInstancePort        int               `xml:"DbInstancePort"`
	DBClusterIdentifier   string            `xml:"DBClusterIdentifier,omitempty"`
	PendingModifiedValues *pendingValues    `xml:"PendingModifiedValues"`
	MasterUserSecret      *masterUserSecret `xml:"MasterUserSecret,omitempty"`
}

type xmlCluster struct {
	DBClusterIdentifier   string            `xml:"DBClusterIdentifier"`
	DBClusterArn          string            `xml:"DBClusterArn"`
	Engine                string            `xml:"Engine"`
	Status                string            `xml:"Status"`
	MasterUsername        string            `xml:"MasterUsername,omitempty"`
	Endpoint              string            `xml:"Endpoint"`
	ReaderEndpoint        string            `xml:"ReaderEndpoint,omitempty"`
	Port                  int               `xml:"Port"`
	PendingModifiedValues *pendingValues    `xml:"PendingModifiedValues,omitempty"`
	MasterUserSecret      *masterUserSecret `xml:"MasterUserSecret,omitempty"`
}

type modifyInstanceResponse struct {
	XMLName  xml.Name         `xml:"ModifyDBInstanceResponse"`
	Xmlns    string           `xml:"xmlns,attr"`
	Result   xmlInstance      `xml:"ModifyDBInstanceResult>DBInstance"`
	Metadata responseMetadata `xml:"ResponseMetadata"`
}

type modifyClusterResponse struct {
	XMLName  xml.Name         `xml:"ModifyDBClusterResponse"`
	Xmlns    string           `xml:"xmlns,attr"`
	Result   xmlCluster       `xml:"ModifyDBClusterResult>DBCluster"`
	Metadata responseMetadata `xml:"ResponseMetadata"`
}

type responseMetadata struct {
	RequestID string `xml:"RequestId"`
}

type describeInstancesResponse struct {
	XMLName  xml.Name         `xml:"DescribeDBInstancesResponse"`
	Xmlns    string           `xml:"xmlns,attr"`
	Result   []xmlInstance    `xml:"DescribeDBInstancesResult>DBInstances>DBInstance"`
	Metadata responseMetadata `xml:"ResponseMetadata"`
}

type describeClustersResponse struct {
	XMLName  xml.Name         `xml:"DescribeDBClustersResponse"`
	Xmlns    string           `xml:"xmlns,attr"`
	Result   []xmlCluster     `xml:"DescribeDBClustersResult>DBClusters>DBCluster"`
	Metadata responseMetadata `xml:"ResponseMetadata"`
}

type errorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

// ServeHTTP answers one query-protocol request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "InvalidAction", "the RDS query API takes POST requests")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "MalformedQueryString", "request body is not form-encoded")
		return
	}
	action := r.PostForm.Get("Action")
	s.mu.Lock()
	s.calls = append(s.calls, action)
	s.mu.Unlock()
	if v := r.PostForm.Get("Version"); v != "2014-10-31" {
		writeError(w, http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("unsupported API version %q; the RDS API version is 2014-10-31", v))
		return
	}
	switch action {
	case "DescribeDBInstances":
		s.describeInstances(w, r.PostForm.Get("DBInstanceIdentifier"))
	case "DescribeDBClusters":
		s.describeClusters(w, r.PostForm.Get("DBClusterIdentifier"))
	case "ModifyDBInstance":
		s.modifyInstance(w, r.PostForm)
	case "ModifyDBCluster":
		s.modifyCluster(w, r.PostForm)
	default:
		writeError(w, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("the action %q is not valid for this web service; the local RDS stand-in serves DescribeDBInstances, DescribeDBClusters, ModifyDBInstance and ModifyDBCluster", action))
	}
}

func (s *Server) describeInstances(w http.ResponseWriter, id string) {
	s.mu.Lock()
	var found []Instance
	for _, i := range s.instances {
		if id == "" || id == i.Identifier || id == i.ARN {
			found = append(found, i)
		}
	}
	s.mu.Unlock()
	if id != "" && len(found) == 0 {
		writeError(w, http.StatusNotFound, "DBInstanceNotFound", fmt.Sprintf("DBInstance %s not found.", id))
		return
	}
	sort.Slice(found, func(a, b int) bool { return found[a].Identifier < found[b].Identifier })
	resp := describeInstancesResponse{Xmlns: xmlns, Metadata: responseMetadata{RequestID: requestID()}}
	s.mu.Lock()
	for _, i := range found {
		resp.Result = append(resp.Result, s.instanceXML(i))
	}
	s.mu.Unlock()
	writeXML(w, http.StatusOK, resp)
}

func (s *Server) describeClusters(w http.ResponseWriter, id string) {
	s.mu.Lock()
	var found []Cluster
	for _, c := range s.clusters {
		if id == "" || id == c.Identifier || id == c.ARN {
			found = append(found, c)
		}
	}
	s.mu.Unlock()
	if id != "" && len(found) == 0 {
		writeError(w, http.StatusNotFound, "DBClusterNotFoundFault", fmt.Sprintf("DBCluster %s not found.", id))
		return
	}
	sort.Slice(found, func(a, b int) bool { return found[a].Identifier < found[b].Identifier })
	resp := describeClustersResponse{Xmlns: xmlns, Metadata: responseMetadata{RequestID: requestID()}}
	s.mu.Lock()
	for _, c := range found {
		resp.Result = append(resp.Result, s.clusterXML(c))
	}
	s.mu.Unlock()
	writeXML(w, http.StatusOK, resp)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	typ := "Sender"
	if status >= 500 {
		typ = "Receiver"
	}
	writeXML(w, status, errorResponse{Xmlns: xmlns, Type: typ, Code: code, Message: msg, RequestID: requestID()})
}

func writeXML(w http.ResponseWriter, status int, v any) {
	body, err := xml.Marshal(v)
	if err != nil {
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(xml.Header))
	_, _ = w.Write(body)
}

func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	h := hex.EncodeToString(b)
	return strings.Join([]string{h[0:8], h[8:12], h[12:16], h[16:20], h[20:32]}, "-")
}
