"""The Agent: gin-built parts, policy modes and resets, one train step, report."""

import gin
import gymnasium
import numpy as np
import pytest
import tensorflow as tf

from dreamkit.agent import Agent

B, T, N = 2, 4, 3
DISCRETE = gymnasium.spaces.Discrete(3)
BOX = gymnasium.spaces.Box(-1, 1, (2,), np.float32)
TINY = """
encoders.DreamerEncoder.cnn_depth = 2
encoders.DreamerEncoder.cnn_kernels = (2, 2, 2, 2)
encoders.DreamerEncoder.mlp_layers = 2
encoders.DreamerEncoder.mlp_units = 16
heads.DreamerDecoder.cnn_depth = 2
heads.DreamerDecoder.cnn_kernels = (2, 2, 2, 2)
heads.DreamerDecoder.mlp_layers = 2
heads.DreamerDecoder.mlp_units = 16
dynamics.CategoricalRSSM.deter = 16
dynamics.CategoricalRSSM.hidden = 16
dynamics.CategoricalRSSM.stoch = 4
dynamics.CategoricalRSSM.discrete = 4
heads.MLPHead.layers = 2
heads.MLPHead.units = 16
actor/heads.MLPHead.units = 12
ActorCritic.imag_horizon = 3
ActorCritic.slow_target_update = 2
"""


def obs_space(image=True):
  box = gymnasium.spaces.Box
  space = {
      'vector': box(-np.inf, np.inf, (3,), np.float32),
      'reward': box(-np.inf, np.inf, (), np.float32),
      'is_first': box(0, 1, (), bool),
      'is_last': box(0, 1, (), bool),
      'is_terminal': box(0, 1, (), bool),
  }
  if image:
    space['image'] = box(0, 255, (16, 16, 1), np.uint8)
  return space


def random_steps(space, act_space, shape, seed=0):
  """Step dicts with leading `shape` ([N] or [B, T]); is_first on the first step."""
  rng = np.random.default_rng(seed)
  data = {}
  for key, box in space.items():
    if box.dtype == np.uint8:
      data[key] = rng.integers(0, 256, shape + box.shape).astype(np.uint8)
    elif box.dtype == bool:
      data[key] = np.zeros(shape, bool)
    else:
      data[key] = rng.normal(size=shape + box.shape).astype(np.float32)
  if isinstance(act_space, gymnasium.spaces.Discrete):
    data['action'] = np.eye(act_space.n, dtype=np.float32)[
        rng.integers(0, act_space.n, shape)]
  else:
    data['action'] = rng.uniform(-1, 1, shape + act_space.shape).astype(np.float32)
  if len(shape) == 2:
    data['is_first'][:, 0] = True
    data['is_terminal'][0, -1] = True
    data['is_last'][0, -1] = True
  return data


def make_agent(act_space, image=True, **kwargs):
  gin.parse_config(TINY)
  step = tf.Variable(0, dtype=tf.int64)
  try:
    return Agent(obs_space(image), act_space, step, **kwargs)
  finally:
    gin.clear_config()


@pytest.fixture(scope='module')
def discrete_agent():
  return make_agent(DISCRETE)


@pytest.fixture(scope='module')
def box_agent():
  return make_agent(BOX, image=False, compile=False, expl_noise=0.3)


def test_bindings_reach_the_world_model_and_the_actor_critic(discrete_agent):
  agent = discrete_agent
  assert agent.wm.dynamics.deter == 16
  assert agent.task_behavior.imag_horizon == 3
  assert agent.task_behavior.slow_target_update == 2
  # The scoped actor binding wins over the root one; the critic takes the root.
  assert agent.task_behavior.actor.mlp.units == 12
  assert agent.task_behavior.critic.mlp.units == 16


@pytest.mark.parametrize('mode', ['train', 'eval', 'explore'])
def test_discrete_policy_gives_one_hot_actions(discrete_agent, mode):
  obs = random_steps(obs_space(), DISCRETE, (N,))
  obs['is_first'][:] = True
  outputs, state = discrete_agent.policy(obs, None, mode)
  action = outputs['action'].numpy()
  assert action.shape == (N, 3)
  np.testing.assert_array_equal(np.sort(action, -1), [[0, 0, 1]] * N)
  outputs, _ = discrete_agent.policy(random_steps(obs_space(), DISCRETE, (N,), 1),
                                     state, mode)
  assert outputs['action'].shape == (N, 3)


@pytest.mark.parametrize('mode', ['train', 'eval', 'explore'])
def test_continuous_policy_stays_in_bounds(box_agent, mode):
  obs = random_steps(obs_space(False), BOX, (N,))
  obs['is_first'][:] = True
  state = None
  for _ in range(3):
    outputs, state = box_agent.policy(obs, state, mode)
    action = outputs['action'].numpy()
    assert action.shape == (N, 2)
    assert np.all(np.abs(action) <= 1)
    obs['is_first'][:] = False


def test_is_first_resets_the_policy_state(discrete_agent):
  obs = random_steps(obs_space(), DISCRETE, (N,))
  obs['is_first'][:] = True
  _, fresh_state = discrete_agent.policy(obs, None, 'eval')
  # A state from a different history; rows 0 and 2 start a new episode.
  latent, _ = discrete_agent.initial_state(N)
  latent = {k: tf.random.normal(v.shape) for k, v in latent.items()}
  old = (latent, tf.one_hot([1, 2, 0], 3))
  obs['is_first'][:] = [True, False, True]
  _, state = discrete_agent.policy(obs, old, 'eval')
  deter, fresh_deter = state[0]['deter'].numpy(), fresh_state[0]['deter'].numpy()
  np.testing.assert_allclose(deter[[0, 2]], fresh_deter[[0, 2]], rtol=1e-5, atol=1e-6)
  assert not np.allclose(deter[1], fresh_deter[1])


def finite_metrics(metrics):
  for key, value in metrics.items():
    assert np.all(np.isfinite(np.asarray(value))), key


def test_discrete_trains_one_step_and_continues(discrete_agent):
  agent = discrete_agent
  batch = random_steps(obs_space(), DISCRETE, (B, T))
  actor = [v.numpy().copy() for v in agent.task_behavior.actor.trainable_variables]
  state, metrics = agent.train(batch)
  finite_metrics(metrics)
  for key in ('model_loss', 'image_loss', 'reward_loss', 'kl_loss', 'actor_loss',
              'critic_loss', 'actor_ent', 'actor_grad_norm', 'critic_grad_norm'):
    assert key in metrics, key
  assert state['deter'].shape == (B, 16)
  after = agent.task_behavior.actor.trainable_variables
  assert all(not np.allclose(a, b.numpy()) for a, b in zip(actor, after))
  state, metrics = agent.train(random_steps(obs_space(), DISCRETE, (B, T), 1), state)
  finite_metrics(metrics)


def test_continuous_trains_eagerly_with_auto(box_agent):
  assert box_agent.task_behavior.actor_dist == 'trunc_normal'
  _, metrics = box_agent.train(random_steps(obs_space(False), BOX, (B, T)))
  finite_metrics(metrics)
  assert 'actor_loss' in metrics


def test_report_gives_open_loop_video(discrete_agent):
  videos = discrete_agent.report(random_steps(obs_space(), DISCRETE, (B, T)))
  assert set(videos) == {'openl_image'}
  video = videos['openl_image'].numpy()
  assert video.shape == (B, T, 48, 16, 1)
  assert video.min() >= 0 and video.max() <= 1


def test_bad_mode_and_bad_behavior(discrete_agent):
  from dreamkit.errors import UserError
  with pytest.raises(ValueError, match='mode'):
    discrete_agent.policy(random_steps(obs_space(), DISCRETE, (N,)), None, 'greedy')
  with pytest.raises(UserError, match='expl_behavior'):
    make_agent(DISCRETE, image=False, compile=False, expl_behavior='plan2explore')


def test_xla_with_float16_loss_scaling_is_refused():
  from dreamkit import precision
  from dreamkit.errors import UserError
  precision.set_precision(16, float16_anyway=True)  # The GPU policy; conftest resets it.
  with pytest.raises(UserError, match='jit_compile'):
    make_agent(DISCRETE, image=False, jit_compile=True)


def test_checkpoint_restores_every_agent_variable(tmp_path):
  first = make_agent(DISCRETE, compile=False)
  second = make_agent(DISCRETE, compile=False)
  batch = random_steps(obs_space(), DISCRETE, (B, T))
  # One train step builds every variable, as the pipeline does before restoring.
  first.train(batch)
  second.train(batch)
  from dreamkit.runner import checkpoint as checkpoint_lib
  checkpoint_lib.Checkpoint(tmp_path, checkpoint_lib.numpy_rng(0), first).save()
  assert checkpoint_lib.Checkpoint(tmp_path, checkpoint_lib.numpy_rng(0), second).restore()
  assert len(first.variables) == len(second.variables)
  slow = {id(v) for v in second.task_behavior.slow_critic.variables}
  assert slow & {id(v) for v in second.variables}
  for a, b in zip(first.variables, second.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=b.path)
