package taskreq

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskerhq/tasker/client"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	valid := func() client.TaskRequest {
		return client.TaskRequest{Namespace: "billing", Name: "invoice", Version: "1.2.3",
			Context: json.RawMessage(`{"a": "\\u0000 is fine escaped twice: \\\\u0000"}`), Tags: []string{"x"}, Priority: 5}
	}
	ok := valid()
	ok.Context = json.RawMessage(`{"path": "C:\\\\u0000dir"}`)
	require.NoError(t, Validate(&ok), "an escaped backslash before u0000 is not a NUL")

	cases := []struct {
		name  string
		edit  func(*client.TaskRequest)
		field string
		kind  Kind
		msg   string
	}{
		{"missing namespace", func(r *client.TaskRequest) { r.Namespace = "" }, "namespace", Missing, "namespace is required"},
		{"missing name", func(r *client.TaskRequest) { r.Name = "" }, "name", Missing, "name is required"},
		{"bad namespace", func(r *client.TaskRequest) { r.Namespace = "Bad-NS" }, "namespace", Invalid, "must match"},
		{"bad version", func(r *client.TaskRequest) { r.Version = "1.02" }, "version", Invalid, "semantic version"},
		{"context array", func(r *client.TaskRequest) { r.Context = json.RawMessage(`[]`) }, "context", Invalid, "JSON object"},
		{"context null", func(r *client.TaskRequest) { r.Context = json.RawMessage(`null`) }, "context", Invalid, "JSON object"},
		{"context NUL value", func(r *client.TaskRequest) { r.Context = json.RawMessage(`{"a": "x\u0000y"}`) }, "context", Invalid, "NUL"},
		{"context NUL key", func(r *client.TaskRequest) { r.Context = json.RawMessage(`{"\u0000": 1}`) }, "context", Invalid, "NUL"},
		{"priority", func(r *client.TaskRequest) { r.Priority = 101 }, "priority", Invalid, "between -100 and 100"},
		{"too many tags", func(r *client.TaskRequest) { r.Tags = make([]string, 65) }, "tags", Invalid, "at most 64"},
		{"long tag", func(r *client.TaskRequest) { r.Tags = []string{strings.Repeat("é", 129)} }, "tags", Invalid, "129 characters"},
		{"NUL tag", func(r *client.TaskRequest) { r.Tags = []string{"a\x00"} }, "tags", Invalid, "NUL"},
		{"long reason", func(r *client.TaskRequest) { r.Reason = strings.Repeat("r", 129) }, "reason", Invalid, "129 characters long, the limit is 128"},
		{"NUL initiator", func(r *client.TaskRequest) { r.Initiator = "a\x00b" }, "initiator", Invalid, "NUL"},
		{"long source", func(r *client.TaskRequest) { r.SourceSystem = strings.Repeat("s", 200) }, "source_system", Invalid, "limit is 128"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			req := valid()
			// The escaped-twice NUL of valid() is text, not a NUL.
			req.Context = json.RawMessage(`{}`)
			require.NoError(t, Validate(&req))
			c.edit(&req)
			err := Validate(&req)
			var fe *FieldError
			require.ErrorAs(t, err, &fe)
			require.True(t, IsFieldError(err))
			require.Equal(t, c.field, fe.Field)
			require.Equal(t, c.kind, fe.Kind)
			require.Contains(t, fe.Message, c.msg)
		})
	}
	long := valid()
	long.Reason = strings.Repeat("é", 128)
	long.Context = json.RawMessage(`{}`)
	require.NoError(t, Validate(&long), "128 characters fit, whatever their byte length")
}
