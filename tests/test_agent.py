"""The Agent: gin-built parts, policy modes and resets, one train step, report."""

import functools

import gin
import gymnasium
import numpy as np
import pytest
import tensorflow as tf

from dreamkit import agent as agent_lib
from dreamkit.agent import Agent
from dreamkit.behavior import exploration
from dreamkit.behavior import objectives
from dreamkit.behavior.actor_critic import ActorCritic
from dreamkit.errors import ConfigError
from dreamkit.networks import dynamics as dynamics_lib
from dreamkit.networks import encoders
from dreamkit.networks import heads
from dreamkit.runner.pipeline import Pipeline
from dreamkit.world_model import WorldModel
from test_world_model import tiny_gin

B, T, N = 2, 4, 3
DISCRETE = gymnasium.spaces.Discrete(3)
BOX = gymnasium.spaces.Box(-1, 1, (2,), np.float32)
# The component graph of pipelines/dreamerv2_defaults.gin at tiny sizes.
TINY = tiny_gin(cnn_depth=2, mlp_layers=2, mlp_units=16) + """
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


def make_agent(act_space, image=True, bindings='', **kwargs):
  """Builds the agent as the training loop does: from the Pipeline's gin-bound slots.

  `bindings` is gin text parsed after TINY; `kwargs` go to the agent factory.
  """
  gin.parse_config(TINY + bindings)
  step = tf.Variable(0, dtype=tf.int64)
  try:
    slots = gin.get_configurable(Pipeline)(
        replay=None, outputs=[], task='test:tiny', logdir='unused')
    return agent_lib.build(
        obs_space(image), act_space, step, slots.world_model, slots.actor_critic,
        slots.explorer, functools.partial(slots.agent, **kwargs))
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
  assert agent.world_model.dynamics.deter == 16
  assert agent.actor_critic.imag_horizon == 3
  assert agent.actor_critic.slow_target_update == 2
  # The scoped actor binding wins over the root one; the critic takes the root.
  assert agent.actor_critic.actor.mlp.units == 12
  assert agent.actor_critic.critic.mlp.units == 16
  assert isinstance(agent.explorer, exploration.Greedy)
  assert isinstance(agent.actor_critic.objective, objectives.Auto)


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
  actor = [v.numpy().copy() for v in agent.actor_critic.actor.trainable_variables]
  state, metrics = agent.train(batch)
  finite_metrics(metrics)
  for key in ('model_loss', 'image_loss', 'reward_loss', 'kl_loss', 'actor_loss',
              'critic_loss', 'actor_ent', 'actor_grad_norm', 'critic_grad_norm'):
    assert key in metrics, key
  assert state['deter'].shape == (B, 16)
  after = agent.actor_critic.actor.trainable_variables
  assert all(not np.allclose(a, b.numpy()) for a, b in zip(actor, after))
  state, metrics = agent.train(random_steps(obs_space(), DISCRETE, (B, T), 1), state)
  finite_metrics(metrics)


def test_continuous_trains_eagerly_with_auto(box_agent):
  assert box_agent.actor_critic.actor_dist == 'trunc_normal'
  _, metrics = box_agent.train(random_steps(obs_space(False), BOX, (B, T)))
  finite_metrics(metrics)
  assert 'actor_loss' in metrics


def test_report_gives_open_loop_video(discrete_agent):
  videos = discrete_agent.report(random_steps(obs_space(), DISCRETE, (B, T)))
  assert set(videos) == {'openl_image'}
  video = videos['openl_image'].numpy()
  assert video.shape == (B, T, 48, 16, 1)
  assert video.min() >= 0 and video.max() <= 1


def test_bad_mode_and_bad_explorer(discrete_agent):
  with pytest.raises(ValueError, match='mode'):
    discrete_agent.policy(random_steps(obs_space(), DISCRETE, (N,)), None, 'greedy')
  # The explorer slot takes a factory, bound without parentheses.
  with pytest.raises(ConfigError, match='without parentheses') as error:
    make_agent(DISCRETE, image=False, compile=False,
               bindings="Pipeline.explorer = 'plan2explore'")
  assert 'Pipeline.explorer = @explorers.<Name>' in str(error.value)
  wm, ac = discrete_agent.world_model, discrete_agent.actor_critic
  step = ac.step
  parts = dict(world_model=lambda *_: wm, actor_critic=lambda *_: ac, agent=Agent)
  with pytest.raises(ConfigError, match='without parentheses'):
    agent_lib.build(obs_space(), DISCRETE, step,
                    explorer=exploration.Greedy(wm, ac, step), **parts)
  with pytest.raises(ConfigError, match='`explorers` registry'):
    agent_lib.build(obs_space(), DISCRETE, step,
                    explorer=lambda *_: ac, **parts)   # Builds a non-explorer.
  # Agent takes built parts: a factory there is refused.
  with pytest.raises(ConfigError, match='Agent: explorer must be'):
    Agent(wm, ac, exploration.Greedy)


def test_xla_with_float16_loss_scaling_is_refused():
  from dreamkit import precision
  from dreamkit.errors import UserError
  precision.set_precision(16, float16_anyway=True)  # The GPU policy; conftest resets it.
  with pytest.raises(UserError, match='jit_compile'):
    make_agent(DISCRETE, image=False, jit_compile=True)


def test_checkpoint_restores_every_agent_variable(tmp_path):
  import keras
  from dreamkit.runner import checkpoint as checkpoint_lib
  batch = random_steps(obs_space(), DISCRETE, (B, T))
  agents = []
  for _ in range(2):
    # Keras numbers layers process-wide and the optimizer slots' names carry that
    # number: restart it, as the resumed run (a new process) does. See
    # test_actor_critic.py::test_checkpoint_names_do_not_depend_on_what_the_process_built_before.
    keras.utils.clear_session(free_memory=False)
    agents.append(make_agent(DISCRETE, compile=False))
    # One train step builds every variable, as the pipeline does before restoring.
    agents[-1].train(batch)
  first, second = agents
  saver = checkpoint_lib.Checkpoint(tmp_path, first, checkpoint_lib.numpy_rng(0))
  path = saver.save()
  # The checkpoint holds each part's state under its name.
  names = checkpoint_lib.saved_names(path)
  assert names == {name: tuple(v.shape) for name, v in
                   checkpoint_lib.named_variables(first).items()}
  for part in ('world_model/encoder/', 'world_model/dynamics/', 'world_model/heads/decoder/',
               'world_model/heads/reward/', 'world_model/heads/discount/',
               'world_model/optimizer/', 'actor_critic/actor/', 'actor_critic/critic/',
               'actor_critic/slow_critic/', 'actor_critic/actor_optimizer/',
               'actor_critic/critic_optimizer/'):
    assert any(name.startswith('agent/' + part) for name in names), part
  assert checkpoint_lib.Checkpoint(tmp_path, second, checkpoint_lib.numpy_rng(0)).restore()
  assert len(first.variables) == len(second.variables)
  slow = {id(v) for v in second.actor_critic.slow_critic.variables}
  assert slow & {id(v) for v in second.variables}
  for a, b in zip(first.variables, second.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=b.path)


def test_agent_from_explicit_parts_without_gin():
  """No gin at all: every slot a functools.partial factory, every part built by hand."""
  from dreamkit import gin_access
  gin.clear_config()
  assert not gin_access.bound()
  mlp = dict(mlp_layers=1, mlp_units=8, cnn_depth=2)
  head = functools.partial(heads.MLPHead, layers=1, units=8)
  step = tf.Variable(0, dtype=tf.int64)
  # wd = 0: a variable then moves only if it received a gradient.
  wm = WorldModel(
      obs_space(image=False), DISCRETE,
      encoder=functools.partial(encoders.DreamerEncoder, cnn_keys='$^', mlp_keys='.*', **mlp),
      dynamics=functools.partial(
          dynamics_lib.CategoricalRSSM, deter=8, hidden=8, stoch=2, discrete=2),
      decoder=functools.partial(heads.DreamerDecoder, cnn_keys='$^', mlp_keys='.*', **mlp),
      reward_head=head, discount=0.9, discount_head=head, model_wd=0)
  ac = ActorCritic(DISCRETE, step, actor=head, critic=head, objective=objectives.Reinforce,
                   discount=0.9, imag_horizon=2, wd=0)
  agent = Agent(wm, ac, exploration.Greedy(wm, ac, step), compile=False)

  obs = random_steps(obs_space(False), DISCRETE, (N,))
  obs['is_first'][:] = True
  outputs, _ = agent.policy(obs)
  np.testing.assert_array_equal(np.sort(outputs['action'].numpy(), -1), [[0, 0, 1]] * N)
  # Keras builds layers at their first call: a forward pass builds the rest (world
  # model heads, critics) so that every variable has a value before the update.
  batch = random_steps(obs_space(False), DISCRETE, (B, T))
  _, _, outputs, _ = wm.compute_loss(wm.preprocess(batch))
  for critic in (ac.critic, ac.slow_critic):
    critic(outputs['feat'])
  before = {id(v): v.numpy().copy() for v in agent.trainable_variables}
  critic_before = [v.numpy().copy() for v in ac.critic.variables]

  _, metrics = agent.train(batch)
  finite_metrics(metrics)
  assert {id(v) for v in agent.trainable_variables} == set(before)  # Nothing new.
  slow = {id(v) for v in ac.slow_critic.variables}
  learned = [v for v in agent.trainable_variables if id(v) not in slow]
  parts = (wm.encoder, wm.dynamics, *wm.heads.values(), ac.actor, ac.critic)
  assert len(learned) == sum(len(p.trainable_variables) for p in parts) > 0
  for var in learned:
    assert not np.array_equal(before[id(var)], var.numpy()), var.path
  # The slow critic learns nothing itself: update 0 copied the critic into it.
  for a, b in zip(critic_before, ac.slow_critic.variables):
    np.testing.assert_array_equal(a, b.numpy())
  # Nothing read or recorded a gin binding.
  assert not gin_access.bound() and not gin_access.read()


def test_policy_alone_can_be_compiled_with_xla_also_under_float16():
  """`policy_jit_compile` compiles the batch-1 policy step with XLA and leaves `train`
  as it is, so float16 loss scaling (which XLA refuses in `train`) does not stop it."""
  from dreamkit import precision
  precision.set_precision(16, float16_anyway=True)  # conftest resets it.
  agent = make_agent(DISCRETE, image=False, policy_jit_compile=True)
  assert agent._policy_fn._jit_compile and not agent._train_fn._jit_compile
  steps = random_steps(obs_space(False), DISCRETE, (2, 3))
  state = None
  for t in range(3):
    obs = {key: value[:, t] for key, value in steps.items() if key != 'action'}
    out, state = agent.policy(obs, state, mode='train')
    action = out['action'].numpy()
    assert action.shape == (2, DISCRETE.n)
    np.testing.assert_array_equal(action.sum(-1), 1.0)
  assert agent._policy_fn.experimental_get_tracing_count() == 1
  with pytest.raises(ConfigError, match='policy_jit_compile'):
    make_agent(DISCRETE, image=False, policy_jit_compile='yes')
