"""Gymnasium ids as step-dict envs: spaces, action conversion, episode ends."""

import sys

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from dreamkit import envs
from dreamkit.errors import UserError


class _Custom(gymnasium.Env):
  """A numpy-only env whose spaces the test chooses; renders a gradient."""

  metadata = {'render_modes': ['rgb_array'], 'render_fps': 30}

  def __init__(self, observation_space=None, action_space=None, render_mode=None):
    self.observation_space = observation_space or spaces.Box(-1, 1, (3,), np.float32)
    self.action_space = action_space or spaces.Discrete(2)
    self.render_mode = render_mode
    self.last_action = None

  def reset(self, seed=None, options=None):
    super().reset(seed=seed)
    return self.observation_space.sample(), {}

  def step(self, action):
    self.last_action = action
    return self.observation_space.sample(), 1.0, False, False, {}

  def render(self):
    rows = np.linspace(0, 255, 120).astype(np.uint8)
    return np.broadcast_to(rows[:, None, None], (120, 90, 3)).copy()


def _register(name, **kwargs):
  env_id = f'DreamkitTest/{name}-v0'
  if env_id not in gymnasium.registry:
    gymnasium.register(env_id, entry_point=_Custom, kwargs=kwargs)
  return f'gym:{env_id}'


def test_cartpole_discrete_one_hot_and_termination():
  env = envs.make('gym:CartPole-v1', seed=0)
  assert env.act_space == spaces.Discrete(2) and envs.is_discrete(env.act_space)
  obs = env.reset()
  assert obs['vector'].shape == (4,) and obs['vector'].dtype == np.float32
  assert env.obs_space['vector'].shape == (4,)
  steps = 0
  while not obs['is_last']:
    obs = env.step(np.array([1.0, 0.0], np.float32))  # Always push left.
    steps += 1
    assert steps < 100
  # The pole falls: a real termination, long before the 500-step limit.
  assert obs['is_terminal'] and obs['reward'] == 1.0
  # Pushing the cart left (index 0) tips the pole to the right (positive angle).
  assert env.env.unwrapped.state[2] > 0.2
  obs = env.reset()
  env.step(1)  # An int index is accepted too.
  with pytest.raises(ValueError):
    env.step(np.zeros(3))


def test_pendulum_box_rescaled_and_truncation_not_terminal():
  env = envs.make('gym:Pendulum-v1', seed=0)
  space = env.act_space
  assert space.shape == (1,) and space.low[0] == -1 and space.high[0] == 1
  env.reset()
  for action, torque in [(1.0, 2.0), (-1.0, -2.0), (0.0, 0.0), (0.5, 1.0), (3.0, 2.0)]:
    obs = env.step(np.array([action], np.float32))
    assert env.env.unwrapped.last_u == pytest.approx(torque)
  steps = 5
  while not obs['is_last']:
    obs = env.step(np.zeros(1))
    steps += 1
  assert steps == 200 and not obs['is_terminal']


def test_time_limit_and_action_repeat():
  env = envs.make('gym:Pendulum-v1', time_limit=4)
  obs = env.reset()
  ends = [env.step([0.0])['is_last'] for _ in range(4)]
  assert ends == [False, False, False, True]
  longer = envs.make('gym:Pendulum-v1', time_limit=250)
  longer.reset()
  assert not any(longer.step([0.0])['is_last'] for _ in range(249))
  assert longer.step([0.0])['is_last']
  repeated = envs.make('gym:Pendulum-v1', action_repeat=2)
  obs = repeated.reset()
  steps = 0
  while not obs['is_last']:
    obs = repeated.step([0.0])
    steps += 1
  assert steps == 100  # The env's own 200 steps, two per agent step.


def test_pixels_render_an_image():
  env = envs.make(_register('Pixels'), pixels=True, size=(64, 64))
  obs = env.reset()
  assert obs['image'].shape == (64, 64, 3) and obs['image'].dtype == np.uint8
  assert obs['vector'].shape == (3,)
  # The rendered gradient survives the area resize: dark top, bright bottom.
  assert obs['image'][0].mean() < 10 and obs['image'][-1].mean() > 245
  assert env.obs_space['image'].shape == (64, 64, 3)


def test_dict_observations_become_keys():
  observation_space = spaces.Dict({
      'camera': spaces.Box(0, 255, (32, 24, 3), np.uint8),
      'depth': spaces.Box(0, 255, (32, 24), np.uint8),
      'joints': spaces.Box(-1, 1, (2, 3), np.float64),
      'mode': spaces.Discrete(4),
      'reward': spaces.Box(-1, 1, (1,), np.float32),
  })
  env = envs.make(_register('Dict', observation_space=observation_space), size=(16, 16))
  obs = env.reset()
  assert obs['camera'].shape == (16, 16, 3) and obs['camera'].dtype == np.uint8
  assert obs['depth'].shape == (16, 16, 1)
  assert obs['joints'].shape == (6,) and obs['joints'].dtype == np.float32
  assert obs['mode'].shape == (4,) and obs['mode'].sum() == 1
  # An entry named like a step-dict key is renamed rather than overwritten.
  assert obs['obs_reward'].shape == (1,) and obs['reward'] == 0
  assert set(env.obs_space) >= {'camera', 'depth', 'joints', 'mode', 'obs_reward'}


@pytest.mark.parametrize('space, name', [
    (spaces.MultiDiscrete([3, 2]), 'MultiDiscrete'),
    (spaces.MultiBinary(4), 'MultiBinary'),
    (spaces.Tuple([spaces.Discrete(2)]), 'Tuple'),
    (spaces.Text(5), 'Text'),
])
def test_unsupported_observation_space_is_refused(space, name):
  with pytest.raises(UserError, match=f'{name}.*Supported'):
    envs.make(_register(f'Obs{name}', observation_space=space))


def test_unsupported_action_space_is_refused():
  with pytest.raises(UserError, match='action space MultiBinary'):
    envs.make(_register('ActMultiBinary', action_space=spaces.MultiBinary(3)))


def test_unknown_id_names_the_closest():
  with pytest.raises(UserError, match='CartPole-v1'):
    envs.make('gym:CartPole-v7')
  with pytest.raises(UserError, match='no_such_module'):
    envs.make('gym:no_such_module:Thing-v0')


def test_module_colon_id_form():
  env = envs.make('gym:gymnasium.envs.classic_control:CartPole-v1')
  assert env.reset()['vector'].shape == (4,)


def test_classic_render_without_pygame_is_a_user_error(monkeypatch):
  monkeypatch.setitem(sys.modules, 'pygame', None)  # `import pygame` now fails.
  env = envs.make('gym:CartPole-v1', pixels=True)
  with pytest.raises(UserError, match='pygame'):
    env.reset()


def test_classic_control_pixels_render():
  # pygame comes with the gymnasium[classic-control] dependency.
  env = envs.make('gym:CartPole-v1', pixels=True, size=(32, 32))
  obs = env.reset()
  assert obs['image'].shape == (32, 32, 3) and obs['image'].dtype == np.uint8
  assert obs['image'].std() > 0 and obs['vector'].shape == (4,)
  env.close()


def _message(task):
  with pytest.raises(UserError) as caught:
    envs.make(task)
  return str(caught.value)


def test_misspelled_id_says_did_you_mean_once():
  message = _message('gym:CartPol-v1')
  assert message.count('Did you mean') == 1, message
  assert 'Did you mean: CartPole-v1' in message and "doesn't exist" in message
  assert 'Did you mean: `CartPole`' not in message  # gymnasium's own hint is gone.


def test_missing_dependency_says_what_to_install_not_the_same_id(monkeypatch):
  # As gymnasium raises it for gym:LunarLander-v3 without Box2D (installed or not here).
  def make(task, **kwargs):
    raise gymnasium.error.DependencyNotInstalled(
        'Box2D is not installed, you can install it by run `pip install swig` followed '
        'by `pip install "gymnasium[box2d]"`')
  monkeypatch.setattr(gymnasium, 'make', make)
  message = _message('gym:LunarLander-v3')
  assert 'Did you mean' not in message, message
  assert 'LunarLander-v3' in message and 'not installed' in message
  assert 'pip install "gymnasium[box2d]"' in message


@pytest.mark.skipif('Box2D' in sys.modules or __import__('importlib').util.find_spec(
    'Box2D') is not None, reason='Box2D is installed here')
def test_lunar_lander_without_box2d_for_real():
  message = _message('gym:LunarLander-v3')
  assert 'Did you mean' not in message and 'gymnasium[box2d]' in message, message


def test_an_image_pipeline_on_a_vector_env_names_the_pipeline_that_suits_it():
  # What pipelines/atari_dreamerv2.gin's key macros meet on gym:CartPole-v1.
  from dreamkit.errors import ConfigError
  from dreamkit.networks.encoders import DreamerEncoder
  from dreamkit.networks.heads import DreamerDecoder
  env = envs.make('gym:CartPole-v1')
  shapes = {key: space.shape for key, space in env.obs_space.items()}
  env.close()
  with pytest.raises(ConfigError) as caught:
    DreamerDecoder(shapes, 'image', '$^', 4, 1, 8)
  message = str(caught.value)
  assert "keys: ['vector']" in message and 'vector observations only' in message
  assert 'pipelines/cartpole_dreamerv2.gin (discrete actions)' in message
  assert 'pipelines/pendulum_dreamerv2.gin (continuous)' in message
  # The encoder sees a batch [B, T, ...]: the same message from the step shapes.
  encoder = DreamerEncoder('image', '$^', 4, 1, 8)
  batch = {key: (2, 3, *shape) for key, shape in shapes.items()}
  with pytest.raises(ConfigError, match='vector observations only: start from '
                     'pipelines/cartpole_dreamerv2.gin'):
    encoder.build(batch)
  # And the other way round: a vector pipeline on pixels names the image pipelines.
  with pytest.raises(ConfigError, match=r'image observations \(image\): start from '
                     'pipelines/atari_dreamerv2.gin'):
    DreamerDecoder({'image': (64, 64, 3), 'reward': ()}, '$^', 'state', 4, 1, 8)
