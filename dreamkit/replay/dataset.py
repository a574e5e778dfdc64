"""tf.data pipeline over a replay store's chunk sampler.

TensorFlow is imported only when a dataset is built, so the stores (and their tests)
stay free of it.
"""

from dreamkit.errors import UserError

# Batches sampled ahead of training; sampling runs in tf.data's thread meanwhile.
PREFETCH = 5


def empty_error():
  return UserError(
      'The replay store is empty, so the dataset cannot know its keys, dtypes and '
      'shapes: add at least one episode (of >= minlen steps; prefill) before '
      'calling dataset().')


def make_dataset(replay, batch, length):
  """A `tf.data.Dataset` of dicts `{key: [batch, length, ...]}`, forever.

  Each iteration gets its own sampler (random stream). The sampler writes every
  batch straight into one numpy array per key, so an image chunk is copied once
  from the store and once into the tensor, never stacked chunk by chunk.

  Args:
    replay: a store with `signature()` and `sampler()` (HDF5Replay, MemoryReplay).
    batch: rows per batch B.
    length: steps per row T.
  """
  signature = replay.signature()  # Raises the empty-store error before TF loads.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  output_signature = {
      key: tf.TensorSpec((batch, length) + tuple(shape), tf.as_dtype(dtype))
      for key, (dtype, shape) in signature.items()}

  def generate():
    sampler = replay.sampler()
    while True:
      yield sampler.sample(batch, length, signature)

  dataset = tf.data.Dataset.from_generator(
      generate, output_signature=output_signature)
  return dataset.prefetch(PREFETCH)
