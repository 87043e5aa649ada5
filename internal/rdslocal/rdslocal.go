// Package rdslocal is a local stand-in for the two RDS API calls Rotary makes,
// DescribeDBInstances and DescribeDBClusters, speaking the AWS query protocol
// (form-encoded requests, XML responses) so the real aws-sdk-go-v2 RDS client
// can talk to it in tests and the demo.
package rdslocal

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
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
	calls     []string
}

// New returns a Server with no instances or clusters.
func New() *Server {
	return &Server{instances: map[string]Instance{}, clusters: map[string]Cluster{}}
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

type xmlInstance struct {
	DBInstanceIdentifier string    `xml:"DBInstanceIdentifier"`
	DBInstanceArn        string    `xml:"DBInstanceArn"`
	Engine               string    `xml:"Engine"`
	DBInstanceStatus     string    `xml:"DBInstanceStatus"`
	MasterUsername       string    `xml:"MasterUsername,omitempty"`
	Endpoint             *endpoint `xml:"Endpoint"`
	DbInstancePort       int       `xml:"DbInstancePort"`
	DBClusterIdentifier  string    `xml:"DBClusterIdentifier,omitempty"`
}

type xmlCluster struct {
	DBClusterIdentifier string `xml:"DBClusterIdentifier"`
	DBClusterArn        string `xml:"DBClusterArn"`
	Engine              string `xml:"Engine"`
	Status              string `xml:"Status"`
	MasterUsername      string `xml:"MasterUsername,omitempty"`
	Endpoint            string `xml:"Endpoint"`
	ReaderEndpoint      string `xml:"ReaderEndpoint,omitempty"`
	Port                int    `xml:"Port"`
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
	default:
		writeError(w, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("the action %q is not valid for this web service; the local RDS stand-in serves DescribeDBInstances and DescribeDBClusters", action))
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
	for _, i := range found {
		resp.Result = append(resp.Result, xmlInstance{
			DBInstanceIdentifier: i.Identifier, DBInstanceArn: i.ARN, Engine: i.Engine, DBInstanceStatus: "available",
			MasterUsername: i.MasterUsername, Endpoint: &endpoint{Address: i.Address, Port: i.Port},
			DbInstancePort: 0, DBClusterIdentifier: i.ClusterIdentifier,
		})
	}
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
	for _, c := range found {
		resp.Result = append(resp.Result, xmlCluster{
			DBClusterIdentifier: c.Identifier, DBClusterArn: c.ARN, Engine: c.Engine, Status: "available",
			MasterUsername: c.MasterUsername, Endpoint: c.Endpoint, ReaderEndpoint: c.ReaderEndpoint, Port: c.Port,
		})
	}
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
