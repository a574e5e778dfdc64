"""The environment interface: DreamerV2 step dicts in, actions out."""


class Env:
  """An environment that yields DreamerV2 step dicts (../docs/architecture.md).

      obs = env.reset()        # obs['is_first'] is True, reward 0.0
      while not obs['is_last']:
        obs = env.step(action)

  Every step dict holds the observation keys (`image`: uint8 [H, W, C]; vector keys:
  float32 [D]) and `reward` (float32 scalar, raw), `is_first`, `is_last`,
  `is_terminal` (bool). `is_terminal` is set only by a real termination, never by a
  time limit. `act_space` is a `gymnasium.spaces.Discrete` (the agent sends a one-hot
  float32 vector; an int index is accepted too) or a `gymnasium.spaces.Box` bounded
  to [-1, 1] (float32). The `prefix` class attribute names the task family that
  `--task prefix:name` selects; `task` is the part after the colon.
  `action_repeat` (simulator steps per agent step) is how the runner counts frames.
  docs/envs.md describes the built-in envs.
  """

  prefix = None
  action_repeat = 1  # Simulator steps per agent step; set it if the env repeats.
  required_methods = ('reset', 'step')

  # Set both in __init__ (or define them as properties); `dreamkit.envs.make` refuses
  # an env whose spaces the agent cannot handle.
  obs_space = None  # dict: key -> gymnasium.spaces.Box, reward and the is_* flags too.
  act_space = None  # gymnasium.spaces.Discrete(n) or Box(-1, 1, (d,), float32).

  def reset(self):
    """Start an episode and return its first step dict (is_first True)."""
    raise NotImplementedError

  def step(self, action):
    """Apply `action` and return the next step dict."""
    raise NotImplementedError

  def close(self):
    """Release the simulator and any worker process."""
