package node

import (
	"testing"
	"time"

	pbv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/pb"
	"github.com/prometheus/client_golang/prometheus"
)

// RelayStats counts reservations, circuits, refusals and bytes, and feeds
// go-libp2p's relay metrics when given a registry.
func TestRelayStatsCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := NewRelayStats(reg)
	s.RelayStatus(true)
	s.ReservationAllowed(false)
	s.ReservationAllowed(false)
	s.ReservationAllowed(true) // a renewal: no new slot
	s.ReservationRequestHandled(pbv2.Status_RESERVATION_REFUSED)
	s.ReservationClosed(1)
	s.ConnectionOpened()
	s.ConnectionRequestHandled(pbv2.Status_RESOURCE_LIMIT_EXCEEDED)
	s.BytesTransferred(1000)
	s.BytesTransferred(234)
	s.ConnectionOpened()
	s.ConnectionClosed(time.Second)
	got := s.Figures()
	want := RelayFigures{Reservations: 1, Circuits: 1, ReservationsTotal: 2, CircuitsTotal: 2, ReservationsRefused: 1, CircuitsRefused: 1, Bytes: 1234}
	if got != want {
		t.Fatalf("figures %+v, want %+v", got, want)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "libp2p_relaysvc_data_transferred_bytes_total" {
			found = mf.GetMetric()[0].GetCounter().GetValue() == 1234
		}
	}
	if !found {
		t.Error("libp2p_relaysvc_data_transferred_bytes_total is not 1234")
	}
	if (*RelayStats)(nil).Figures() != (RelayFigures{}) {
		t.Error("a nil RelayStats should give zero figures")
	}
}
