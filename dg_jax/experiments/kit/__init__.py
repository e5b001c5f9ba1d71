"""The experiments' shared kit: run setup (`setup.setup_run`), the generic training stage
(`fit.fit`) and sample-shard writing (`sample_shards`)."""
