package nodetest

import (
	"context"
	"strings"
	"testing"

	"github.com/lloom/lloom/node/client"
	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/pkg/backend/backendtest"
	"github.com/lloom/lloom/protocol/pb"
)

func TestChatThroughTheNetwork(t *testing.T) {
	fake := backendtest.New(t, backendtest.WithModels("m1"), backendtest.WithTokens("Hello", ",", " wörld", "!"))
	v, _ := StartValidator(t, nil)
	e, _ := StartExecutor(t, []*validator.Validator{v}, []*pb.ModelDescriptor{Model("m1", 2)}, func(c *executor.Config) { c.Backend.URL = fake.URL() })
	Eventually(t, "executor registered", Registered(v, e.ID(), "m1"))
	c := NewClient(t, v)
	var got []string
	ans, err := c.Infer(context.Background(), client.Request{Model: "m1",
		Messages: []*pb.ChatMessage{{Role: "user", Content: "say hi"}}}, func(s string) error {
		got = append(got, s)
		return nil
	})
	if err != nil {
		t.Fatalf("infer: %v (attempts %+v)", err, ans)
	}
	if strings.Join(got, "") != "Hello, wörld!" || ans.Text != "Hello, wörld!" {
		t.Fatalf("text %q / %q", got, ans.Text)
	}
	if ans.Receipt == nil || ans.Executor != e.ID() {
		t.Fatalf("answer %+v", ans)
	}
	t.Logf("usage %+v fee %s finish %s", ans.Usage, ans.Receipt.Receipt.GetFeeWei(), ans.FinishReason)
}
