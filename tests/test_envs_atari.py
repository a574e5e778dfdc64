"""Atari on the DreamerV2 protocol, and the area resize it uses."""

import numpy as np
import pytest

from dreamkit import envs
from dreamkit.envs import atari
from dreamkit.envs import wrappers
from dreamkit.errors import UserError


@pytest.fixture(scope='module')
def pong():
  env = atari.Atari('pong', time_limit=5, seed=0)
  yield env
  env.close()


def test_pong_spaces_and_image(pong):
  obs = pong.reset()
  assert obs['image'].dtype == np.uint8 and obs['image'].shape == (64, 64, 1)
  assert pong.obs_space['image'].shape == (64, 64, 1)
  assert pong.act_space.n == 6  # Pong's minimal action set, not the full 18.
  assert pong.action_repeat == 4
  assert obs['is_first'] and not obs['is_last'] and not obs['is_terminal']
  assert obs['reward'].dtype == np.float32 and obs['reward'] == 0


def test_sticky_actions_and_frameskip_read_back_from_the_ale(pong):
  assert pong.ale.getFloat('repeat_action_probability') == pytest.approx(0.25)
  # The ALE steps single frames; the repeat of 4 is ours.
  assert pong.ale.getInt('frame_skip') == 1
  assert pong._env.unwrapped._frameskip == 1
  # No ALE frame cap: the time limit in agent steps is the only cut.
  assert pong.ale.getInt('max_num_frames_per_episode') == 0
  plain = atari.Atari('pong', sticky=False, noops=0)
  assert plain.ale.getFloat('repeat_action_probability') == 0.0
  plain.close()


def test_random_noops_at_reset(pong):
  frames = set()
  for _ in range(6):
    pong.reset()
    frames.add(pong.ale.getEpisodeFrameNumber())
  assert all(1 <= frame <= 30 for frame in frames)
  assert len(frames) > 1  # Drawn at random, not a fixed count.
  plain = atari.Atari('pong', noops=0)
  plain.reset()
  assert plain.ale.getEpisodeFrameNumber() == 0
  plain.close()


def test_action_repeat_and_time_limit_without_terminal(pong):
  obs = pong.reset()
  start = pong.ale.getEpisodeFrameNumber()
  steps = 0
  while not obs['is_last']:
    obs = pong.step(np.eye(6, dtype=np.float32)[1])  # One-hot FIRE.
    steps += 1
    assert not obs['is_first']
  assert steps == 5
  assert not obs['is_terminal']
  assert pong.ale.getEpisodeFrameNumber() - start == 4 * 5


def test_image_is_max_of_last_two_frames_area_resized():
  # Without sticky actions and no-ops the ALE is deterministic given the seed, so a
  # plain frame-by-frame copy of the game shows what each agent step must see.
  env = atari.Atari('breakout', sticky=False, noops=0, seed=3)
  import gymnasium
  twin = gymnasium.make('ALE/Breakout-v5', frameskip=1, repeat_action_probability=0.0,
                        obs_type='grayscale', max_num_frames_per_episode=0)
  env.reset()
  twin.reset(seed=3)
  for action in [1, 2, 3, 3, 2, 0, 1]:
    obs = env.step(action)
    frames = [twin.step(action)[0] for _ in range(4)]
    expected = wrappers.area_resize(np.maximum(frames[-2], frames[-1]), (64, 64))
    np.testing.assert_array_equal(obs['image'][..., 0], expected)
  env.close()
  twin.close()


def test_rewards_are_raw():
  env = atari.Atari('space_invaders', seed=0)
  env.reset()
  rewards = [float(env.step(1)['reward']) for _ in range(120)]
  env.close()
  # Space Invaders scores 5 to 30 per alien: a clipped reward would be at most 1.
  assert max(rewards) >= 5
  assert all(reward == int(reward) for reward in rewards)


@pytest.mark.parametrize('life_done', [False, True])
def test_life_loss_ends_the_episode_only_with_life_done(life_done):
  env = atari.Atari('breakout', life_done=life_done, seed=0)
  env.reset()
  lives = env.ale.lives()
  for _ in range(200):
    obs = env.step(1)  # FIRE launches the ball, which is then missed.
    if env.ale.lives() < lives:
      break
  assert env.ale.lives() == lives - 1
  assert obs['is_last'] == life_done and obs['is_terminal'] == life_done
  assert obs['image'].shape == (64, 64, 1)
  env.reset()
  assert env.ale.lives() == lives  # A reset starts a new game.
  env.close()


def test_rgb_and_size_options():
  env = atari.Atari('pong', grayscale=False, size=(32, 48), noops=0)
  obs = env.reset()
  assert obs['image'].shape == (32, 48, 3)
  env.close()


def test_game_names_map_to_ale_ids():
  assert atari.resolve_game('pong') == 'ALE/Pong-v5'
  assert atari.resolve_game('ms_pacman') == 'ALE/MsPacman-v5'
  assert atari.resolve_game('james_bond') == 'ALE/Jamesbond-v5'
  assert atari.resolve_game('video_pinball') == 'ALE/VideoPinball-v5'
  assert atari.resolve_game('montezumas_revenge') == 'ALE/MontezumaRevenge-v5'
  ids = atari.game_ids()
  assert len(atari.BENCHMARK_GAMES) == 55
  assert set(atari.BENCHMARK_GAMES) <= set(ids)


def test_unknown_game_names_the_closest():
  with pytest.raises(UserError, match='pong'):
    envs.make('atari:pongg')


def test_make_builds_atari_with_overrides():
  env = envs.make('atari:pong', noops=0, time_limit=1)
  env.reset()
  assert env.step(0)['is_last']
  env.close()


def _exact_area(image, size):
  """Area resize by definition: replicate pixels to a common grid, then block-mean."""
  (height, width), (rows, cols) = image.shape, size
  fine = np.repeat(np.repeat(image.astype(np.float64), rows, 0), cols, 1)
  return fine.reshape(rows, height, cols, width).mean((1, 3))


def test_area_resize_is_area_interpolation():
  random = np.random.default_rng(0)
  # Non-integer ratios in both axes, as for Atari's 210x160 -> 64x64.
  image = random.integers(0, 256, (42, 32), dtype=np.uint8)
  resized = wrappers.area_resize(image, (13, 10))
  assert resized.shape == (13, 10) and resized.dtype == np.uint8
  # Within rounding of the exact area mean, fractional edge pixels included.
  assert np.abs(resized - _exact_area(image, (13, 10))).max() <= 0.5 + 1e-3
  # An integer ratio is a plain block mean.
  block = random.integers(0, 256, (8, 6, 3), dtype=np.uint8)
  expected = block.reshape(4, 2, 3, 2, 3).astype(np.float64).mean((1, 3))
  np.testing.assert_array_equal(
      wrappers.area_resize(block, (4, 3)), np.floor(expected + 0.5).astype(np.uint8))
  constant = np.full((210, 160), 77, np.uint8)
  assert (wrappers.area_resize(constant, (64, 64)) == 77).all()
