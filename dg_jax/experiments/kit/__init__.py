"""The experiments' shared kit: run setup (`setup.setup_run`), the generic training stage
(`fit.fit`), sample-shard writing (`sample_shards`), DG's discriminators from a config section
(`discriminators`) and the image pipelines' evaluate stage (`image_eval`)."""
