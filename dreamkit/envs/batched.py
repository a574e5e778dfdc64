"""N copies of an env stepped together: the interface the driver steps, and the
in-process implementation (`ParallelEnvs` in parallel.py steps copies in workers).

    envs = SerialEnvs([make(task, seed=0), make(task, seed=1)])
    first = envs.reset([0, 1])          # step dicts, in the order of the indices
    steps = envs.step(actions)          # actions [N, A]: one step dict per copy
    envs.close()
"""

from dreamkit.envs.base import Env


class BatchedEnvs:
  """`num` copies of one env; `obs_space`, `act_space`, `action_repeat` as an Env's.

  `reset(indices)` resets the copies named and returns their first step dicts;
  `step(actions)` steps every copy with its row of `actions` and returns the N step
  dicts in copy order. How the copies run (one after another, in workers) is the
  implementation's.
  """

  num = 0
  obs_space = None
  act_space = None
  action_repeat = 1

  def reset(self, indices):
    raise NotImplementedError

  def step(self, actions):
    raise NotImplementedError

  def close(self):
    """Release every copy."""

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class SerialEnvs(BatchedEnvs):
  """Env objects stepped one after another in this process."""

  def __init__(self, envs):
    self.envs = list(envs)
    if not self.envs or not all(isinstance(env, Env) for env in self.envs):
      raise ValueError(f'SerialEnvs needs one or more Env objects, got {envs!r}.')
    first = self.envs[0]
    self.num = len(self.envs)
    self.obs_space, self.act_space = first.obs_space, first.act_space
    self.action_repeat = first.action_repeat

  def reset(self, indices):
    return [self.envs[index].reset() for index in indices]

  def step(self, actions):
    return [env.step(action) for env, action in zip(self.envs, actions)]

  def close(self):
    for env in self.envs:
      env.close()
