"""Scale-out with Ray: sharded index builds (Ray tasks), Ray Data encoding, exact scatter-gather search.

Shards are ordinary rankstack indexes; ``open_sharded(path).bm25()`` merges their top k exactly as one index
over the same documents would rank them. Ray comes with the ``[scale]`` extra and is imported only when used;
without ``ray.init()`` everything runs in this process.
"""

from rankstack.scale.build import (
    build_shard,
    build_sharded,
    encode_sparse_with_ray_data,
    encode_tokens_with_ray_data,
    encode_with_ray_data,
)
from rankstack.scale.sharded import (
    GlobalStatistics,
    ShardedBM25,
    ShardedColBERT,
    ShardedDense,
    ShardedImpact,
    ShardedIndex,
    ShardError,
    merge_shard_rankings,
    open_sharded,
)

__all__ = [
    "GlobalStatistics",
    "ShardError",
    "ShardedBM25",
    "ShardedColBERT",
    "ShardedDense",
    "ShardedImpact",
    "ShardedIndex",
    "build_shard",
    "build_sharded",
    "encode_sparse_with_ray_data",
    "encode_tokens_with_ray_data",
    "encode_with_ray_data",
    "merge_shard_rankings",
    "open_sharded",
]
