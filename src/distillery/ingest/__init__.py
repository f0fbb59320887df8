"""Stage 1, ingest: read RGB-D recordings, index them, plan shards and pack them.

Modules, in the order the rules run them: `readers` (one reader per dataset layout),
`frames` (the frame record and its checks), `index` (the `index_dataset` rule),
`shards` (the `plan_shards` checkpoint), `resize` and `pack` (the `pack_shard` rule).
"""
