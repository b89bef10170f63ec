"""``ReplayIter``: a DataIter that replays a fixed list of (bucketed) batches, as
BucketSentenceIter would give them; the bucketing and FeedForward tests share it."""
import hybridnet as mx


class ReplayIter(mx.io.DataIter):
    """Replays ``batches``; ``provide_data`` / ``provide_label`` describe the default bucket."""

    def __init__(self, batches, batch_size, default_bucket_key, provide_data, provide_label):
        super().__init__(batch_size)
        self.batches = batches
        self.default_bucket_key = default_bucket_key
        self.provide_data = provide_data
        self.provide_label = provide_label
        self.cursor = 0

    def reset(self):
        self.cursor = 0

    def next(self):
        if self.cursor == len(self.batches):
            raise StopIteration
        self.cursor += 1
        return self.batches[self.cursor - 1]
