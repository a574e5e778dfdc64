"""The driver: steps N environments with a policy and tells subscribers what happened.

    driver = Driver(envs)
    driver.on_step(lambda step, worker: replay.add_step(step, worker))
    driver.on_episode(lambda episode, worker: log_return(episode))
    driver(policy, steps=1000)      # agent steps, summed over the N envs

Replay, counters and outputs simply subscribe; the driver knows none of them.
"""

import numpy as np

from dreamkit.envs.batched import BatchedEnvs, SerialEnvs
from dreamkit.spaces import action_size


class Driver:
  """Steps a list of envs in lock step with a batched policy.

  `policy(obs, state) -> (outputs, state)` receives the N current step dicts
  stacked to `[N, ...]` and returns `outputs['action']` `[N, A]`. The step dict passed
  to `on_step` holds the observation and the `action` that led to it (zeros on
  `is_first`), which is what the replay stores. An env whose episode ended is reset
  before the next policy call, so every step passed to the policy is live.

  A copy that failed and was restarted by the envs (docs/envs.md) answers `step` with
  the first step dict (`is_first`) of a fresh episode. Its unfinished episode is
  dropped: `on_episode` never sees it, and the `is_first` step passed to `on_step`
  (before any other step of that call) tells the replay to forget its steps. It does
  not count as a step.
  """

  def __init__(self, envs):
    # A list of Env objects is stepped in this process; any BatchedEnvs (a
    # ParallelEnvs steps its workers concurrently) is stepped as it is.
    self._envs = envs if isinstance(envs, BatchedEnvs) else SerialEnvs(envs)
    self._zero_action = np.zeros(action_size(self._envs.act_space), np.float32)
    self._on_step = []
    self._on_episode = []
    self.reset()

  def on_step(self, callback):
    self._on_step.append(callback)

  def on_episode(self, callback):
    self._on_episode.append(callback)

  def reset(self):
    """Forgets the ongoing episodes and the policy state (the next call resets envs)."""
    self._obs = [None] * self._envs.num
    self._episodes = [[] for _ in range(self._envs.num)]
    self._state = None

  def __call__(self, policy, steps=0, episodes=0):
    """Runs until `steps` agent steps or `episodes` episodes have passed."""
    step, episode = 0, 0
    while step < steps or episode < episodes:
      finished = [i for i, obs in enumerate(self._obs) if obs is None or obs['is_last']]
      if finished:
        for index, obs in zip(finished, self._envs.reset(finished)):
          self._start(index, obs)
      batch = {key: np.stack([obs[key] for obs in self._obs]) for key in self._obs[0]}
      outputs, self._state = policy(batch, self._state)
      actions = np.asarray(outputs['action'], np.float32)
      results = self._envs.step(actions)
      restarted = [index for index, obs in enumerate(results) if obs['is_first']]
      for index in restarted:  # First, so no subscriber sees the dropped steps again.
        self._start(index, results[index])
      for index, obs in enumerate(results):
        if index in restarted:
          continue
        obs = dict(obs)
        obs['action'] = actions[index]
        self._record(index, obs)
        step += 1
        if obs['is_last']:
          self._finish(index)
          episode += 1
    return step, episode

  def _start(self, index, obs):
    obs = dict(obs)
    obs['action'] = self._zero_action
    self._episodes[index] = []
    self._record(index, obs)

  def _record(self, index, obs):
    self._obs[index] = obs
    self._episodes[index].append(obs)
    for callback in self._on_step:
      callback(obs, index)

  def _finish(self, index):
    steps = self._episodes[index]
    episode = {key: np.stack([step[key] for step in steps]) for key in steps[0]}
    for callback in self._on_episode:
      callback(episode, index)
