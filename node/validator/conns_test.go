package validator_test

import (
	"errors"
	"testing"

	"github.com/lloom/lloom/node/executor"
	"github.com/lloom/lloom/node/nodetest"
	"github.com/lloom/lloom/node/validator"
	"github.com/lloom/lloom/protocol/pb"
)

// The links a network cannot lose are protected from the connection
// manager's trimming by the side that dials them: a validator's link to
// the validators it was given (--validator), an executor's to its
// validators. Trimming happens only past the high watermark, which a
// validator sizes for its registry (node.ValidatorConnections).
func TestBootstrapLinksProtected(t *testing.T) {
	v1, _ := nodetest.StartValidator(t, nil)
	v2, _ := nodetest.StartValidator(t, func(c *validator.Config) { c.Peers = nodetest.Bootstraps(t, v1) })
	e, _ := nodetest.StartExecutor(t, []*validator.Validator{v1}, []*pb.ModelDescriptor{nodetest.Model("m", 1)}, func(*executor.Config) {})
	nodetest.Eventually(t, "bootstrap links protected", func() error {
		if !v2.Host().ConnManager().IsProtected(v1.ID(), "lloom-bootstrap") {
			return errors.New("the validator's link to its peer validator is not protected")
		}
		if !e.Host().ConnManager().IsProtected(v1.ID(), "lloom-bootstrap") {
			return errors.New("the executor's link to its validator is not protected")
		}
		return nil
	})
}
