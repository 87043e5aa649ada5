// Package elasticachelocal is a local stand-in for the ElastiCache API's
// RBAC user operations (DescribeUsers, ModifyUser) and
// DescribeReplicationGroups, on the real query protocol, for the real
// aws-sdk-go-v2 elasticache client. ModifyUser is applied to a real
// redis-server through ACL commands, as ElastiCache applies it to its
// nodes: the user is "modifying" for a configurable delay, then "active".
// Like AWS's, its DescribeUsers can lag (DescribeLag): for a while after a
// ModifyUser it still shows the user as it was, active.
// It checks what AWS documents: at most two passwords of 16 to 128
// printable characters, no change while the user is modifying, and
// answers UserNotFound, ReplicationGroupNotFoundFault, InvalidUserState and
// InvalidParameterValue as AWS does.
package elasticachelocal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

const xmlns = "http://elasticache.amazonaws.com/doc/2015-02-02/"

// Account and Region of the ARNs the stand-in makes.
const (
	Account = "123456789012"
	Region  = "us-east-1"
)

// UserARN returns the ARN of the user id.
func UserARN(id string) string {
	return "arn:aws:elasticache:" + Region + ":" + Account + ":user:" + id
}

// User is an RBAC user.
type User struct {
	UserID, UserName string
	// AccessString is the user's Redis ACL rules, such as "on ~app:* +@read".
	AccessString string
	UserGroupIDs []string
}

// ReplicationGroup is a replication group: its primary endpoint (a
// throwaway redis-server) and the user groups it uses.
type ReplicationGroup struct {
	ID           string
	Host         string
	Port         int
	UserGroupIDs []string
	// Redis is an admin client of the group's server, through which
	// ModifyUser is applied.
	Redis *goredis.Client
}

type user struct {
	User
	status    string
	passwords int
	// shown is what DescribeUsers answers until lagUntil.
	shown    xmlUser
	lagUntil time.Time
}

// Server is the stand-in; use it as an http.Handler.
type Server struct {
	// Delay is how long a user stays "modifying" after ModifyUser.
	Delay time.Duration
	// DescribeLag is how long after a ModifyUser DescribeUsers still shows
	// the user as it was before the call (active, with its old password
	// count), as AWS's eventually consistent DescribeUsers may. 0 means
	// none. Set it before the ModifyUser it applies to.
	DescribeLag time.Duration

	mu     sync.Mutex
	users  map[string]*user
	groups map[string]ReplicationGroup
	calls  []string
}

// New returns an empty stand-in.
func New() *Server {
	return &Server{users: map[string]*user{}, groups: map[string]ReplicationGroup{}}
}

// AddReplicationGroup adds a replication group.
func (s *Server) AddReplicationGroup(g ReplicationGroup) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.groups[g.ID] = g
}

// AddUser creates the user on the servers of every replication group that
// uses one of its user groups, with passwords, and adds it.
func (s *Server) AddUser(ctx context.Context, u User, passwords ...string) error {
	st := &user{User: u, status: "active", passwords: len(passwords)}
	mods := []string{}
	for _, p := range passwords {
		mods = append(mods, "#"+hashHex(p))
	}
	if err := s.apply(ctx, st, append([]string{"reset"}, append(strings.Fields(u.AccessString), mods...)...)); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.UserID] = st
	return nil
}

// RegisterUser adds a user that already exists, with that many passwords,
// on the servers of its groups, changing nothing on them (AddUser creates
// it afresh).
func (s *Server) RegisterUser(u User, passwords int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.users[u.UserID] = &user{User: u, status: "active", passwords: passwords}
}

// Status returns the user's status ("" for an unknown user).
func (s *Server) Status(id string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u, ok := s.users[id]; ok {
		return u.status
	}
	return ""
}

// Lagging reports whether DescribeUsers still shows the user as it was
// before its last ModifyUser (see DescribeLag).
func (s *Server) Lagging(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	u, ok := s.users[id]
	return ok && time.Now().Before(u.lagUntil)
}

// Calls returns the actions called so far, in order.
func (s *Server) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.calls...)
}

// apply runs ACL SETUSER u.UserName mods on every server of u's groups.
func (s *Server) apply(ctx context.Context, u *user, mods []string) error {
	s.mu.Lock()
	var clients []*goredis.Client
	for _, g := range s.groups {
		if shares(g.UserGroupIDs, u.UserGroupIDs) && g.Redis != nil {
			clients = append(clients, g.Redis)
		}
	}
	s.mu.Unlock()
	for _, c := range clients {
		args := []any{"ACL", "SETUSER", u.UserName}
		for _, m := range mods {
			args = append(args, m)
		}
		if err := c.Do(ctx, args...).Err(); err != nil {
			return fmt.Errorf("apply to the replication group's server: %v", strings.Fields(err.Error())[0])
		}
	}
	return nil
}

func shares(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}

type xmlEndpoint struct {
	Address string `xml:"Address"`
	Port    int    `xml:"Port"`
}

type xmlUser struct {
	UserID               string   `xml:"UserId"`
	UserName             string   `xml:"UserName"`
	Status               string   `xml:"Status"`
	Engine               string   `xml:"Engine"`
	MinimumEngineVersion string   `xml:"MinimumEngineVersion"`
	AccessString         string   `xml:"AccessString"`
	UserGroupIDs         []string `xml:"UserGroupIds>member"`
	AuthType             string   `xml:"Authentication>Type"`
	PasswordCount        int      `xml:"Authentication>PasswordCount"`
	ARN                  string   `xml:"ARN"`
}

type xmlGroup struct {
	ID                       string       `xml:"ReplicationGroupId"`
	Status                   string       `xml:"Status"`
	PrimaryEndpoint          xmlEndpoint  `xml:"NodeGroups>NodeGroup>PrimaryEndpoint"`
	ConfigurationEndpoint    *xmlEndpoint `xml:"ConfigurationEndpoint,omitempty"`
	TransitEncryptionEnabled bool         `xml:"TransitEncryptionEnabled"`
	UserGroupIDs             []string     `xml:"UserGroupIds>member"`
	ARN                      string       `xml:"ARN"`
}

type metadata struct {
	RequestID string `xml:"RequestId"`
}

type describeUsersResponse struct {
	XMLName  xml.Name  `xml:"DescribeUsersResponse"`
	Xmlns    string    `xml:"xmlns,attr"`
	Users    []xmlUser `xml:"DescribeUsersResult>Users>member"`
	Metadata metadata  `xml:"ResponseMetadata"`
}

type modifyUserResponse struct {
	XMLName  xml.Name `xml:"ModifyUserResponse"`
	Xmlns    string   `xml:"xmlns,attr"`
	User     xmlUser  `xml:"ModifyUserResult"`
	Metadata metadata `xml:"ResponseMetadata"`
}

type describeGroupsResponse struct {
	XMLName  xml.Name   `xml:"DescribeReplicationGroupsResponse"`
	Xmlns    string     `xml:"xmlns,attr"`
	Groups   []xmlGroup `xml:"DescribeReplicationGroupsResult>ReplicationGroups>ReplicationGroup"`
	Metadata metadata   `xml:"ResponseMetadata"`
}

type errorResponse struct {
	XMLName   xml.Name `xml:"ErrorResponse"`
	Xmlns     string   `xml:"xmlns,attr"`
	Type      string   `xml:"Error>Type"`
	Code      string   `xml:"Error>Code"`
	Message   string   `xml:"Error>Message"`
	RequestID string   `xml:"RequestId"`
}

// ServeHTTP answers the query protocol.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		writeError(w, http.StatusMethodNotAllowed, "InvalidAction", "the ElastiCache query API takes POST requests")
		return
	}
	if err := r.ParseForm(); err != nil {
		writeError(w, http.StatusBadRequest, "MalformedQueryString", "request body is not form-encoded")
		return
	}
	f := r.PostForm
	action := f.Get("Action")
	s.mu.Lock()
	s.calls = append(s.calls, action)
	s.mu.Unlock()
	if v := f.Get("Version"); v != "2015-02-02" {
		writeError(w, http.StatusBadRequest, "InvalidParameterValue", fmt.Sprintf("unsupported API version %q; the ElastiCache API version is 2015-02-02", v))
		return
	}
	switch action {
	case "DescribeUsers":
		s.describeUsers(w, f.Get("UserId"))
	case "ModifyUser":
		s.modifyUser(w, r)
	case "DescribeReplicationGroups":
		s.describeGroups(w, f.Get("ReplicationGroupId"))
	default:
		writeError(w, http.StatusBadRequest, "InvalidAction", fmt.Sprintf("the action %q is not valid for this web service; the local ElastiCache stand-in serves DescribeUsers, ModifyUser and DescribeReplicationGroups", action))
	}
}

func (u *user) xml() xmlUser {
	auth := "password"
	if u.passwords == 0 {
		auth = "no-password"
	}
	return xmlUser{UserID: u.UserID, UserName: u.UserName, Status: u.status, Engine: "redis", MinimumEngineVersion: "6.0",
		AccessString: u.AccessString, UserGroupIDs: u.UserGroupIDs, AuthType: auth, PasswordCount: u.passwords, ARN: UserARN(u.UserID)}
}

func (s *Server) describeUsers(w http.ResponseWriter, id string) {
	s.mu.Lock()
	resp := describeUsersResponse{Xmlns: xmlns, Metadata: metadata{requestID()}}
	now := time.Now()
	for _, u := range s.users {
		if id == "" || id == u.UserID {
			if now.Before(u.lagUntil) {
				resp.Users = append(resp.Users, u.shown)
			} else {
				resp.Users = append(resp.Users, u.xml())
			}
		}
	}
	s.mu.Unlock()
	if id != "" && len(resp.Users) == 0 {
		writeError(w, http.StatusNotFound, "UserNotFound", fmt.Sprintf("User %s not found.", id))
		return
	}
	sort.Slice(resp.Users, func(a, b int) bool { return resp.Users[a].UserID < resp.Users[b].UserID })
	writeXML(w, resp)
}

func (s *Server) describeGroups(w http.ResponseWriter, id string) {
	s.mu.Lock()
	resp := describeGroupsResponse{Xmlns: xmlns, Metadata: metadata{requestID()}}
	for _, g := range s.groups {
		if id == "" || id == g.ID {
			resp.Groups = append(resp.Groups, xmlGroup{ID: g.ID, Status: "available", PrimaryEndpoint: xmlEndpoint{g.Host, g.Port},
				TransitEncryptionEnabled: true, UserGroupIDs: g.UserGroupIDs,
				ARN: "arn:aws:elasticache:" + Region + ":" + Account + ":replicationgroup:" + g.ID})
		}
	}
	s.mu.Unlock()
	if id != "" && len(resp.Groups) == 0 {
		writeError(w, http.StatusNotFound, "ReplicationGroupNotFoundFault", fmt.Sprintf("ReplicationGroup %s not found.", id))
		return
	}
	writeXML(w, resp)
}

// listParam returns name.member.1, name.member.2, ...
func listParam(r *http.Request, name string) ([]string, bool) {
	var out []string
	present := false
	for i := 1; ; i++ {
		v, ok := r.PostForm[name+".member."+strconv.Itoa(i)]
		if !ok {
			break
		}
		present = true
		out = append(out, v[0])
	}
	if _, ok := r.PostForm[name]; ok { // an empty list
		present = true
	}
	return out, present
}

func (s *Server) modifyUser(w http.ResponseWriter, r *http.Request) {
	f := r.PostForm
	id := f.Get("UserId")
	passwords, hasPasswords := listParam(r, "Passwords")
	if ap, ok := listParam(r, "AuthenticationMode.Passwords"); ok {
		passwords, hasPasswords = ap, true
	}
	if f.Get("AccessString") != "" || f.Get("AppendAccessString") != "" || f.Get("NoPasswordRequired") != "" || f.Get("AuthenticationMode.Type") == "iam" || f.Get("AuthenticationMode.Type") == "no-password-required" {
		writeError(w, http.StatusBadRequest, "InvalidParameterValue", "the local ElastiCache stand-in changes passwords only")
		return
	}
	if !hasPasswords {
		writeError(w, http.StatusBadRequest, "InvalidParameterCombination", "No modifications were requested.")
		return
	}
	if len(passwords) == 0 || len(passwords) > 2 {
		writeError(w, http.StatusBadRequest, "InvalidParameterValue", "Passwords must contain one or two passwords: a user can have at most two passwords.")
		return
	}
	for _, p := range passwords {
		if len(p) < 16 || len(p) > 128 {
			writeError(w, http.StatusBadRequest, "InvalidParameterValue", "Passwords must be between 16 and 128 characters long.")
			return
		}
		for _, c := range []byte(p) {
			if c < 0x21 || c > 0x7e {
				writeError(w, http.StatusBadRequest, "InvalidParameterValue", "Passwords must contain only printable ASCII characters.")
				return
			}
		}
	}
	s.mu.Lock()
	u, ok := s.users[id]
	if !ok {
		s.mu.Unlock()
		writeError(w, http.StatusNotFound, "UserNotFound", fmt.Sprintf("User %s not found.", id))
		return
	}
	if u.status != "active" {
		st := u.status
		s.mu.Unlock()
		writeError(w, http.StatusBadRequest, "InvalidUserState", fmt.Sprintf("User %s is in %s state.", id, st))
		return
	}
	if s.DescribeLag > 0 {
		u.shown, u.lagUntil = u.xml(), time.Now().Add(s.DescribeLag)
	}
	u.status = "modifying"
	u.passwords = len(passwords)
	out := u.xml()
	s.mu.Unlock()
	mods := []string{"resetpass"}
	for _, p := range passwords {
		mods = append(mods, "#"+hashHex(p))
	}
	go func() {
		time.Sleep(s.Delay)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		status := "active"
		if err := s.apply(ctx, u, mods); err != nil {
			status = "active" // ElastiCache reports no failure on the user; the passwords stay as they were
		}
		s.mu.Lock()
		u.status = status
		s.mu.Unlock()
	}()
	writeXML(w, modifyUserResponse{Xmlns: xmlns, User: out, Metadata: metadata{requestID()}})
}

func writeXML(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(xml.Header))
	_ = xml.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	typ := "Sender"
	_ = xml.NewEncoder(w).Encode(errorResponse{Xmlns: xmlns, Type: typ, Code: code, Message: msg, RequestID: requestID()})
}

func requestID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func hashHex(pw string) string {
	h := sha256.Sum256([]byte(pw))
	return hex.EncodeToString(h[:])
}
