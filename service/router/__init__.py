"""`gramdex serve --router`: one /v1 API over an index whose shards are served by several `gramdex serve`
processes (shard groups, each with replicas), with answers equal to one server holding every shard."""
