"""The metric sink interface."""


class Output:
  """Receives metrics rows from the runner and writes them somewhere.

      output = outputs.JSONL(logdir)
      output.write(step, {'train_return': 12.0, 'model_loss': 3.1})
      output.video(step, 'openl_image', frames)   # frames uint8 [T, H, W, C]
      output.close()

  `step` is the agent-step counter; values are Python/NumPy scalars. Sinks that
  cannot show a kind of value (a video in a JSONL file) ignore it.
  """

  required_methods = ('write',)

  def write(self, step, metrics):
    raise NotImplementedError

  def video(self, step, name, frames):
    """Optional: an animated video, uint8 [T, H, W, C]."""

  def text(self, name, text):
    """Optional: a text record, such as the run's config."""

  def flush(self):
    """Optional: make everything written so far durable."""

  def close(self):
    self.flush()
