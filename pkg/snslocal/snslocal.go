// Package snslocal is a local stand-in for Amazon SNS, for the tests and
// `rotary local`: it speaks SNS's query protocol (POST, form-encoded
// Action=..., XML answers and errors as AWS documents them), so the real
// aws-sdk-go-v2 sns client talks to it unchanged, and it records every
// published message. It serves only CreateTopic, DeleteTopic, ListTopics and
// Publish; another action is InvalidAction.
package snslocal

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// xmlns is the namespace of SNS's answers.
const xmlns = "http://sns.amazonaws.com/doc/2010-03-31/"

// MaxMessageBytes is the largest message Publish accepts (256 KiB).
const MaxMessageBytes = 256 * 1024

// Message is one published message.
type Message struct {
	MessageID string
	TopicARN  string
	Subject   string
	Message   string
	Time      time.Time
}

// Server is a local SNS. It is an http.Handler and safe for concurrent use.
type Server struct {
	region, account string

	mu       sync.Mutex
	topics   map[string]bool // by ARN
	messages []Message
}

// New returns a server whose topic ARNs name region and account.
func New(region, account string) *Server {
	return &Server{region: region, account: account, topics: map[string]bool{}}
}

// errBadTopicName is SNS's own message for a bad topic name.
//
//lint:ignore ST1005 SNS's own wording
var errBadTopicName = errors.New("Invalid parameter: Topic Name")

var topicName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)

// CreateTopic creates a topic (or returns the existing one) and returns its
// ARN, as the CreateTopic action does.
func (s *Server) CreateTopic(name string) (string, error) {
	if !topicName.MatchString(name) {
		return "", errBadTopicName
	}
	arn := fmt.Sprintf("arn:aws:sns:%s:%s:%s", s.region, s.account, name)
	s.mu.Lock()
	s.topics[arn] = true
	s.mu.Unlock()
	return arn, nil
}

// Messages returns the messages published so far, oldest first.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.messages)
}

// IsRequest reports whether r is an SNS query-protocol request (a
// form-encoded POST), as opposed to a JSON API's request on the same
// endpoint.
func IsRequest(r *http.Request) bool {
	ct := strings.ToLower(r.Header.Get("Content-Type"))
	return r.Method == http.MethodPost && r.Header.Get("X-Amz-Target") == "" && strings.HasPrefix(ct, "application/x-www-form-urlencoded")
}

// apiError is an error answer: HTTP status, SNS's error code and type.
type apiError struct {
	status int
	code   string
	sender bool
	msg    string
}

func invalidParameter(format string, args ...any) *apiError {
	return &apiError{http.StatusBadRequest, "InvalidParameter", true, fmt.Sprintf(format, args...)}
}

// ServeHTTP answers one query-protocol request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		s.writeError(w, &apiError{http.StatusMethodNotAllowed, "InvalidAction", true, "the local SNS accepts only POST requests"})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 2*MaxMessageBytes)
	if err := r.ParseForm(); err != nil {
		s.writeError(w, invalidParameter("Invalid parameter: the request body is not form-encoded or too large"))
		return
	}
	f := r.PostForm
	if v := f.Get("Version"); v != "" && v != "2010-03-31" {
		s.writeError(w, &apiError{http.StatusBadRequest, "InvalidParameterValue", true, fmt.Sprintf("Invalid API version %q; SNS's is 2010-03-31", v)})
		return
	}
	var (
		result string
		aerr   *apiError
	)
	action := f.Get("Action")
	switch action {
	case "Publish":
		result, aerr = s.publish(f.Get("TopicArn"), f.Get("TargetArn"), f.Get("PhoneNumber"), f.Get("Subject"), f.Get("Message"), f.Has("Subject"))
	case "CreateTopic":
		arn, err := s.CreateTopic(f.Get("Name"))
		if err != nil {
			aerr = invalidParameter("%s", err.Error())
		} else {
			result = elem("TopicArn", arn)
		}
	case "DeleteTopic":
		aerr = s.deleteTopic(f.Get("TopicArn"))
		result = ""
	case "ListTopics":
		result = s.listTopics()
	case "":
		aerr = &apiError{http.StatusBadRequest, "MissingAction", true, "the request has no Action"}
	default:
		aerr = &apiError{http.StatusBadRequest, "InvalidAction", true, fmt.Sprintf("the local SNS does not serve the action %s; it serves CreateTopic, DeleteTopic, ListTopics and Publish", action)}
	}
	if aerr != nil {
		s.writeError(w, aerr)
		return
	}
	s.writeResult(w, action, result)
}

// publish checks a Publish request as SNS does and records the message.
func (s *Server) publish(topic, target, phone, subject, message string, hasSubject bool) (string, *apiError) {
	switch {
	case topic != "" && target != "":
		return "", invalidParameter("Invalid parameter: TopicArn or TargetArn Reason: Only one of TopicArn or TargetArn may be specified")
	case topic == "":
		topic = target
	}
	if topic == "" {
		if phone != "" {
			return "", invalidParameter("Invalid parameter: PhoneNumber Reason: the local SNS does not send SMS")
		}
		return "", invalidParameter("Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter")
	}
	if !strings.HasPrefix(topic, "arn:aws:sns:") || strings.Count(topic, ":") != 5 {
		return "", invalidParameter("Invalid parameter: TopicArn")
	}
	if message == "" {
		return "", invalidParameter("Invalid parameter: Empty message")
	}
	if len(message) > MaxMessageBytes {
		return "", invalidParameter("Invalid parameter: Message too long")
	}
	if !utf8.ValidString(message) {
		return "", invalidParameter("Invalid parameter: Message Reason: not valid UTF-8")
	}
	if hasSubject && !validSubject(subject) {
		return "", invalidParameter("Invalid parameter: Subject")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.topics[topic] {
		return "", &apiError{http.StatusNotFound, "NotFound", true, "Topic does not exist"}
	}
	id := newID()
	s.messages = append(s.messages, Message{MessageID: id, TopicARN: topic, Subject: subject, Message: message, Time: time.Now().UTC()})
	return elem("MessageId", id), nil
}

// validSubject: printable ASCII, starting with a letter, number or
// punctuation mark, no line break, at most 99 characters (SNS's rules).
func validSubject(s string) bool {
	if s == "" || len(s) >= 100 || s[0] == ' ' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func (s *Server) deleteTopic(arn string) *apiError {
	if arn == "" {
		return invalidParameter("Invalid parameter: TopicArn")
	}
	s.mu.Lock()
	delete(s.topics, arn) // deleting a topic that does not exist succeeds
	s.mu.Unlock()
	return nil
}

func (s *Server) listTopics() string {
	s.mu.Lock()
	arns := make([]string, 0, len(s.topics))
	for arn := range s.topics {
		arns = append(arns, arn)
	}
	s.mu.Unlock()
	slices.Sort(arns)
	var b strings.Builder
	b.WriteString("<Topics>")
	for _, a := range arns {
		b.WriteString("<member>" + elem("TopicArn", a) + "</member>")
	}
	b.WriteString("</Topics>")
	return b.String()
}

// writeResult writes <ActionResponse><ActionResult>inner</ActionResult>
// <ResponseMetadata><RequestId/></ResponseMetadata></ActionResponse>.
func (s *Server) writeResult(w http.ResponseWriter, action, inner string) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, `<%sResponse xmlns="%s"><%sResult>%s</%sResult><ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>`,
		action, xmlns, action, inner, action, newID(), action)
}

// elem is <name>text</name>, the text escaped.
func elem(name, text string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(text))
	return "<" + name + ">" + b.String() + "</" + name + ">"
}

func (s *Server) writeError(w http.ResponseWriter, e *apiError) {
	typ := "Receiver"
	if e.sender {
		typ = "Sender"
	}
	doc := struct {
		XMLName xml.Name `xml:"ErrorResponse"`
		Xmlns   string   `xml:"xmlns,attr"`
		Error   struct {
			Type    string
			Code    string
			Message string
		}
		RequestID string `xml:"RequestId"`
	}{Xmlns: xmlns, RequestID: newID()}
	doc.Error.Type, doc.Error.Code, doc.Error.Message = typ, e.code, e.msg
	body, _ := xml.Marshal(doc)
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.status)
	_, _ = w.Write(body)
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
