package jaegertest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestStartAndQuery(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b := Start(t), Start(t) // two at once must not collide
	for _, j := range []*Jaeger{a, b} {
		if !strings.HasPrefix(j.OTLPGRPCEndpoint(), "127.0.0.1:") || !strings.HasPrefix(j.OTLPHTTPEndpoint(), "http://127.0.0.1:") {
			t.Fatalf("endpoints not on loopback: %s %s", j.OTLPGRPCEndpoint(), j.OTLPHTTPEndpoint())
		}
		traces, err := j.Traces(ctx, "nobody")
		if err != nil {
			t.Fatal(err)
		}
		if len(traces) != 0 {
			t.Fatalf("fresh Jaeger has traces: %+v", traces)
		}
		_, err = j.Trace(ctx, "4bf92f3577b34da6a3ce929d0e0e4736")
		if !errors.Is(err, ErrNotFound) {
			t.Fatalf("Trace of an unknown ID: got %v, want ErrNotFound", err)
		}
	}
	if a.OTLPGRPCEndpoint() == b.OTLPGRPCEndpoint() {
		t.Fatal("two instances share a port")
	}

	short, cancelShort := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancelShort()
	if _, err := a.WaitForSpans(short, "4bf92f3577b34da6a3ce929d0e0e4736", 1); err == nil || !strings.Contains(err.Error(), "waiting for 1 spans") {
		t.Fatalf("WaitForSpans on a missing trace: %v", err)
	}
}

func TestBinaryIsFoundFromAPackageDirectory(t *testing.T) {
	bin, err := Binary()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(bin, "tools/bin/jaeger") {
		t.Fatalf("unexpected path %s", bin)
	}
}

func TestRepoRootSkipsToolsModule(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(root + "/tools")
	again, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if again != root {
		t.Fatalf("from tools/: got %s, want %s", again, root)
	}
}

func TestMissingBinarySaysHowToBuildIt(t *testing.T) {
	_, err := binaryIn(t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "run scripts/build-jaeger.sh") {
		t.Fatalf("got %v", err)
	}
}
