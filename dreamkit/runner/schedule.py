"""When to do periodic work, in agent steps."""


class Every:
  """`should(step)` is True once each time `step` reaches the next multiple of `every`.

  Counting from `start` lets a resumed run keep the same rhythm without firing for
  every period it skipped while it was down.
  """

  def __init__(self, every, start=0):
    self.every = int(every)
    self._last = None if self.every <= 0 else (int(start) // self.every) * self.every

  def __call__(self, step):
    if self.every <= 0:
      return False
    if step >= self._last + self.every:
      self._last = (int(step) // self.every) * self.every
      return True
    return False
