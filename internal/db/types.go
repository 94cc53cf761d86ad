package db

import (
	"context"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// RegisterTypes teaches a connection's type map to send and read
// uuid.UUID in PostgreSQL's binary form. Without it pgx treats uuid.UUID as
// a driver.Valuer: it formats each value as text, fails to encode that as
// binary (building an error message), parses the text back and encodes
// the result; in a saturated engine that was a third of the Go CPU, most
// of it in the arrays of the batched hot path.
func RegisterTypes(m *pgtype.Map) {
	m.TryWrapEncodePlanFuncs = append([]pgtype.TryWrapEncodePlanFunc{tryWrapUUIDEncodePlan}, m.TryWrapEncodePlanFuncs...)
	m.TryWrapScanPlanFuncs = append([]pgtype.TryWrapScanPlanFunc{tryWrapUUIDScanPlan}, m.TryWrapScanPlanFuncs...)
}

// afterConnect is the pools' AfterConnect hook.
func afterConnect(_ context.Context, c *pgx.Conn) error {
	RegisterTypes(c.TypeMap())
	return nil
}

func tryWrapUUIDEncodePlan(value any) (pgtype.WrappedEncodePlanNextSetter, any, bool) {
	if u, ok := value.(uuid.UUID); ok {
		return &uuidEncodePlan{}, pgtype.UUID{Bytes: u, Valid: true}, true
	}
	return nil, nil, false
}

type uuidEncodePlan struct{ next pgtype.EncodePlan }

func (p *uuidEncodePlan) SetNext(next pgtype.EncodePlan) { p.next = next }

func (p *uuidEncodePlan) Encode(value any, buf []byte) ([]byte, error) {
	return p.next.Encode(pgtype.UUID{Bytes: value.(uuid.UUID), Valid: true}, buf)
}

func tryWrapUUIDScanPlan(target any) (pgtype.WrappedScanPlanNextSetter, any, bool) {
	if u, ok := target.(*uuid.UUID); ok {
		return &uuidScanPlan{}, (*uuidScanner)(u), true
	}
	return nil, nil, false
}

type uuidScanPlan struct{ next pgtype.ScanPlan }

func (p *uuidScanPlan) SetNext(next pgtype.ScanPlan) { p.next = next }

func (p *uuidScanPlan) Scan(src []byte, target any) error {
	return p.next.Scan(src, (*uuidScanner)(target.(*uuid.UUID)))
}

// uuidScanner is a *uuid.UUID that pgx's uuid codec scans into directly.
type uuidScanner uuid.UUID

// ScanUUID leaves the zero UUID for NULL, as uuid.UUID's own Scan does.
func (s *uuidScanner) ScanUUID(v pgtype.UUID) error {
	*s = uuidScanner(v.Bytes)
	return nil
}
