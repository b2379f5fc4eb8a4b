package metrics

import "github.com/lloom/lloom/protocol/pb"

// QueryKinds are the label values of lloom_query_duration_seconds{kind},
// indexed by QueryKind.
var QueryKinds = [...]string{"list_models", "find_model", "executor_info", "statistics", "other"}

// QueryKind is the index in QueryKinds of q's kind.
func QueryKind(q *pb.QueryRequest) int {
	switch q.GetQuery().(type) {
	case *pb.QueryRequest_ListModels:
		return 0
	case *pb.QueryRequest_FindModel:
		return 1
	case *pb.QueryRequest_ExecutorInfo:
		return 2
	case *pb.QueryRequest_Statistics:
		return 3
	}
	return len(QueryKinds) - 1
}
