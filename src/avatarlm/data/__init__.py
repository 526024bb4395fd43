"""The synthetic talking-avatar world: renderer, speech, behaviour, clips and shards."""
