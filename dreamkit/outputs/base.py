"""The metric sink interface."""


class Output:
  """Receives metrics rows from the runner and writes them somewhere.

  Bound in gin as a factory, which the pipeline calls with the run directory:

      Pipeline.outputs = [@outputs.Terminal, @outputs.JSONL, @outputs.TensorBoard]

  and then used by the runner as:

      output = outputs.JSONL(logdir)
      output.text('config', config_text)          # once, at the start
      output.write(step, {'train_return': 12.0, 'model_loss': 3.1})
      output.video(step, 'openl_image', frames)   # frames uint8 [T, H, W, C]
      output.progress(step, {'frames': 4800})      # live counters, ~1/s
      output.flush()                              # e.g. before saving a checkpoint
      output.close()

  `step` is the agent-step counter; values are Python/NumPy scalars. Sinks that
  cannot show a kind of value (a video in a JSONL file) ignore it.
  """

  required_methods = ('write',)

  def write(self, step, metrics):
    """One row: `metrics` maps names to scalars, all measured at agent step `step`."""
    raise NotImplementedError

  def video(self, step, name, frames):
    """Optional: an animated video, uint8 [T, H, W, C] with C = 1 or 3."""

  def text(self, name, text):
    """Optional: a text record, such as the run's config."""

  def progress(self, step, counters):
    """Optional: live counters between rows (`frames`, `updates`,
    `steps_budget`, and `prefill_until` while the random prefill runs), about
    once a second; e.g. for a status line."""

  def flush(self):
    """Optional: make everything written so far durable."""

  def close(self):
    """Flushes and releases files; the output is not used afterwards."""
    self.flush()
