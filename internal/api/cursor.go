package api

import (
	"encoding/base64"
	"encoding/json"
	"time"

	"github.com/google/uuid"

	"github.com/taskerhq/tasker/internal/db"
	"github.com/taskerhq/tasker/internal/taskreq"
)

// cursor is what a TaskList.NextCursor encodes: the last task of the page.
// Clients treat it as opaque; base64 keeps it one URL-safe token.
type cursor struct {
	At   time.Time `json:"t"`
	UUID uuid.UUID `json:"u"`
}

// EncodeCursor is the NextCursor of a page whose last task is k.
func EncodeCursor(k db.TaskKey) string {
	b, _ := json.Marshal(cursor{At: k.CreatedAt, UUID: k.TaskUUID})
	return base64.RawURLEncoding.EncodeToString(b)
}

// DecodeCursor reads a cursor given back by a client; a bad one is a
// FieldError on "cursor".
func DecodeCursor(s string) (*db.TaskKey, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	var c cursor
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.UUID == uuid.Nil || c.At.IsZero() {
		return nil, taskreq.Invalidf("cursor", "cursor is not one this server gave out")
	}
	return &db.TaskKey{CreatedAt: c.At, TaskUUID: c.UUID}, nil
}
