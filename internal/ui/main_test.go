package ui_test

import (
	"testing"

	"github.com/taskerhq/tasker/internal/dbtest"
)

func TestMain(m *testing.M) { dbtest.Main(m) }
