"""Atari 2600 games through ale-py and Gymnasium, on the DreamerV2 protocol.

Each step of `Atari`, in order (docs/envs.md explains why we do not use Gymnasium's
AtariPreprocessing wrapper):
  1. Sticky actions: the ALE repeats the previous action with probability 0.25 on
     every emulator frame (Machado et al. 2018), set as `repeat_action_probability`.
  2. Action repeat: the chosen action is sent for `action_repeat` (4) frames; the ALE
     runs with `frameskip=1` so each of those frames is sticky on its own.
  3. Max-pool: the observation is the pixel-wise max of the last two frames of the
     repeat (Atari sprites flicker between frames).
  4. Grayscale from the ALE's own palette, then an area resize to 64x64.
  5. Rewards are summed over the repeat and returned raw (training clips them).
  6. Losing a life does not end the episode (`life_done=False`); game over does, with
     `is_terminal`. The episode is cut at `time_limit` (27,000) agent steps = 108,000
     frames, with `is_last` only.
At reset, a random number of no-ops in [1, noops] (30) is played first.
"""

import difflib

import numpy as np

from dreamkit.envs import registry
from dreamkit.envs import wrappers
from dreamkit.envs.base import Env
from dreamkit import validate
from dreamkit.errors import UserError

# The 55 games of the DreamerV2 Atari benchmark (Atari 57 without Defender and
# Surround, the games Dopamine's baselines cover), by their ALE ROM names.
BENCHMARK_GAMES = (
    'alien', 'amidar', 'assault', 'asterix', 'asteroids', 'atlantis', 'bank_heist',
    'battle_zone', 'beam_rider', 'berzerk', 'bowling', 'boxing', 'breakout',
    'centipede', 'chopper_command', 'crazy_climber', 'demon_attack', 'double_dunk',
    'enduro', 'fishing_derby', 'freeway', 'frostbite', 'gopher', 'gravitar', 'hero',
    'ice_hockey', 'jamesbond', 'kangaroo', 'krull', 'kung_fu_master',
    'montezuma_revenge', 'ms_pacman', 'name_this_game', 'phoenix', 'pitfall', 'pong',
    'private_eye', 'qbert', 'riverraid', 'road_runner', 'robotank', 'seaquest',
    'skiing', 'solaris', 'space_invaders', 'star_gunner', 'tennis', 'time_pilot',
    'tutankham', 'up_n_down', 'venture', 'video_pinball', 'wizard_of_wor',
    'yars_revenge', 'zaxxon')

# Names people write that differ from the ROM name by more than underscores.
ALIASES = {
    'montezumas_revenge': 'montezuma_revenge',
    'riverride': 'riverraid',
    'pacman_ms': 'ms_pacman',
}


def _ale():
  import ale_py
  import gymnasium
  gymnasium.register_envs(ale_py)
  return ale_py, gymnasium


def game_ids():
  """{ALE ROM name: Gymnasium id} of every game ale-py ships, e.g. pong -> ALE/Pong-v5."""
  _, gymnasium = _ale()
  result = {}
  for env_id, spec in gymnasium.registry.items():
    if env_id.startswith('ALE/') and env_id.endswith('-v5'):
      result[spec.kwargs['game']] = env_id
  return result


def _key(name):
  return name.lower().replace('_', '').replace('-', '').replace(' ', '')


def resolve_game(name):
  """The Gymnasium id of game `name` (snake_case, underscores optional)."""
  ids = game_ids()
  name = ALIASES.get(name, name)
  by_key = {_key(game): env_id for game, env_id in ids.items()}
  if _key(name) in by_key:
    return by_key[_key(name)]
  close = difflib.get_close_matches(name, list(ids), n=3, cutoff=0.5)
  hint = f" Did you mean: {', '.join(close)}?" if close else ''
  raise UserError(
      f"Unknown Atari game '{name}'.{hint} The 55 benchmark games are: "
      f"{', '.join(BENCHMARK_GAMES)} (ale-py ships {len(ids)} games in all).")


@registry.register
class Atari(Env):
  """An Atari game on the DreamerV2 protocol (sticky actions, max-pool, 64x64 gray).

  Args:
    task: game name in snake_case ('pong', 'ms_pacman', 'james_bond').
    action_repeat: emulator frames per agent step.
    size: (height, width) of the image after the area resize.
    grayscale: one gray channel (the ALE palette's luminance) instead of RGB.
    noops: at reset, play a random number of no-ops in [1, noops]; 0 for none.
    life_done: end the episode (with is_terminal) when a life is lost.
    sticky: repeat the previous action with probability 0.25 on every frame.
    all_actions: the full 18-action set instead of the game's minimal set.
    time_limit: cut episodes after this many agent steps (is_last only); 0 for none.
    seed: seeds the ALE (sticky actions) and the no-op draws; None for random.
  """

  prefix = 'atari'

  def __init__(self, task, action_repeat=4, size=(64, 64), grayscale=True, noops=30,
               life_done=False, sticky=True, all_actions=False, time_limit=27000,
               seed=None):
    args = validate.Arguments(self)
    self.action_repeat = self._repeat = args.positive_int(action_repeat, 'action_repeat')
    self._size = wrappers.check_size(size, args.name('size'))
    self._grayscale = args.boolean(grayscale, 'grayscale')
    self._noops = args.non_negative_int(noops, 'noops')
    self._life_done = args.boolean(life_done, 'life_done')
    sticky = args.boolean(sticky, 'sticky')
    all_actions = args.boolean(all_actions, 'all_actions')
    self._clock = wrappers.EpisodeClock(time_limit, args.name('time_limit'))
    seed = args.optional_seed(seed, 'seed')
    self.game_id = resolve_game(task)
    _, gymnasium = _ale()
    # The ALE's own frame cap (108,000 for v5) is switched off so that `time_limit`,
    # counted in agent steps after the no-ops, is the only cut.
    self._env = gymnasium.make(
        self.game_id, frameskip=1, repeat_action_probability=0.25 if sticky else 0.0,
        full_action_space=bool(all_actions), max_num_frames_per_episode=0,
        obs_type='grayscale' if grayscale else 'rgb')
    self._ale = self._env.unwrapped.ale
    self._actions = int(self._env.action_space.n)
    self.act_space = gymnasium.spaces.Discrete(self._actions)
    self._random = np.random.default_rng(seed)
    self._seed = seed
    self._seeded = False
    self._lives = 0
    channels = 1 if grayscale else 3
    self.obs_space = wrappers.obs_space(
        {'image': wrappers.image_space((*self._size, channels))})

  @property
  def ale(self):
    """The underlying ale_py.ALEInterface (settings can be read back from it)."""
    return self._ale

  def reset(self):
    self._reset_game()
    noops = int(self._random.integers(1, self._noops + 1)) if self._noops else 0
    for _ in range(noops):
      _, _, terminated, truncated, _ = self._env.step(0)
      if terminated or truncated:
        self._reset_game()
    self._lives = self._ale.lives()
    self._clock.reset()
    # No second frame to pool with at reset: the first image is the last frame.
    image = self._image(self._screen())
    return wrappers.step_dict({'image': image}, 0.0, True, False, False)

  def step(self, action):
    index = wrappers.discrete_index(action, self._actions)
    reward = 0.0
    terminated = truncated = False
    frames = []
    for repeat in range(self._repeat):
      _, frame_reward, terminated, truncated, _ = self._env.step(index)
      reward += frame_reward
      if self._life_done and self._ale.lives() < self._lives:
        terminated = True
      self._lives = self._ale.lives()
      if repeat >= self._repeat - 2 or terminated or truncated:
        frames.append(self._screen())
      if terminated or truncated:
        break
    # Max over the last two frames seen; an episode that ends on the first frame of the
    # repeat has only one.
    pooled = frames[-1] if len(frames) == 1 else np.maximum(frames[-2], frames[-1])
    cut = self._clock.tick()
    is_last = terminated or truncated or cut
    return wrappers.step_dict(
        {'image': self._image(pooled)}, reward, False, is_last, terminated)

  def close(self):
    self._env.close()

  def _reset_game(self):
    if not self._seeded:
      self._env.reset(seed=self._seed)
      self._seeded = True
    else:
      self._env.reset()

  def _screen(self):
    if self._grayscale:
      return self._ale.getScreenGrayscale()
    return self._ale.getScreenRGB()

  def _image(self, frame):
    image = wrappers.area_resize(frame, self._size)
    return image[..., None] if image.ndim == 2 else image
