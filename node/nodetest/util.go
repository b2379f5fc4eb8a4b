package nodetest

import (
	"os"
	"slices"

	lp "github.com/lloom/lloom/protocol"
	"github.com/lloom/lloom/protocol/pb"
)

func testingLogs() bool { return os.Getenv("LLOOM_TEST_LOG") != "" }

// openModels returns the model ids of an entry's signed announcement.
func openModels(e *pb.ExecutorEntry) ([]string, error) {
	s, err := lp.OpenAnnouncement(e.GetAnnouncementEnvelope())
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, m := range s.Announcement().GetModels() {
		ids = append(ids, m.GetModelId())
	}
	return ids, nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
