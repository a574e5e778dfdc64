"""ActorCritic and imagination on a tiny RSSM with reward and discount heads."""

import functools

import gin
import gymnasium
import keras
import numpy as np
import pytest
import tensorflow as tf

from dreamkit.behavior import objectives
from dreamkit.behavior.actor_critic import ActorCritic, ReturnNorm
from dreamkit.behavior.imagination import imagine
from dreamkit.errors import ConfigError
from dreamkit.networks import dynamics as dynamics_lib
from dreamkit.networks import heads
from dreamkit.spaces import action_size

B, T, E, H = 2, 4, 8, 3
DISCRETE = gymnasium.spaces.Discrete(3)
BOX = gymnasium.spaces.Box(-1, 1, (2,), np.float32)
Head = functools.partial(heads.MLPHead, layers=2, units=16)


def make_ac(space, step, **kwargs):
  """An ActorCritic from explicit factories (every slot a factory, no gin)."""
  kwargs = {'actor': Head, 'critic': Head, 'objective': objectives.Auto,
            'discount': 0.99, 'imag_horizon': H, **kwargs}
  return ActorCritic(space, step, **kwargs)


class LatentModel(keras.layers.Layer):
  """The part of a WorldModel that imagination reads: `dynamics` and `heads`."""

  def __init__(self, action_size, discount_head=True):
    super().__init__()
    self.dynamics = dynamics_lib.CategoricalRSSM(deter=16, hidden=16, stoch=4, discrete=4)
    self.dynamics.build_for(E, action_size)
    self.heads = {'reward': Head(())}
    if discount_head:
      self.heads['discount'] = Head((), dist='binary')
    self.action_size = action_size

  def posterior(self, seed=0):
    rng = np.random.default_rng(seed)
    embed = tf.constant(rng.normal(size=(B, T, E)), tf.float32)
    action = tf.one_hot(rng.integers(0, self.action_size, (B, T)), self.action_size)
    is_first = tf.constant(np.arange(T)[None].repeat(B, 0) == 0)
    post, _ = self.dynamics.observe(embed, action, is_first)
    return post


def reward_fn(model):
  return lambda traj: model.heads['reward'](traj['feat']).mean()


def is_terminal():
  return tf.constant([[False, False, True, False], [False] * T])


@pytest.fixture(scope='module')
def discrete_setup():
  model = LatentModel(3)
  start = model.posterior()
  step = tf.Variable(0, dtype=tf.int64)
  ac = make_ac(DISCRETE, step, slow_target_update=2)
  return model, start, ac


@pytest.fixture(scope='module')
def box_setup():
  model = LatentModel(2)
  start = model.posterior()
  step = tf.Variable(0, dtype=tf.int64)
  ac = make_ac(BOX, step)
  return model, start, ac


def test_imagine_shapes_discounts_and_weights(discrete_setup):
  model, start, ac = discrete_setup
  traj = imagine(model, ac.actor, start, is_terminal(), H, 0.9)
  n = B * T
  assert traj['feat'].shape[:2] == (H + 1, n)
  assert traj['action'].shape == (H + 1, n, 3)
  assert traj['stoch'].shape == (H + 1, n, 4, 4)
  np.testing.assert_array_equal(traj['action'][0].numpy(), 0)
  np.testing.assert_allclose(tf.reduce_sum(traj['action'][1:], -1).numpy(), 1)
  # The start state keeps its posterior.
  np.testing.assert_allclose(
      traj['deter'][0].numpy(), tf.reshape(start['deter'], [n, -1]).numpy())
  disc = traj['discount'].numpy()
  expected_first = 0.9 * (1 - is_terminal().numpy().reshape(-1))
  np.testing.assert_allclose(disc[0], expected_first)
  weight = traj['weight'].numpy()
  np.testing.assert_allclose(weight[0], 1)
  np.testing.assert_allclose(weight[1], disc[0], rtol=1e-6)
  np.testing.assert_allclose(weight[3], disc[0] * disc[1] * disc[2], rtol=1e-5)
  # The terminal start (row b=0, t=2) gives no weight to anything after it.
  np.testing.assert_allclose(weight[1:, 2], 0)


def test_imagine_without_discount_head_uses_the_constant():
  model = LatentModel(3, discount_head=False)
  step = tf.Variable(0, dtype=tf.int64)
  ac = make_ac(DISCRETE, step)
  traj = imagine(model, ac.actor, model.posterior(), None, H, 0.9)
  np.testing.assert_allclose(traj['discount'].numpy(), 0.9)
  np.testing.assert_allclose(traj['weight'][-1].numpy(), 0.9 ** 3, rtol=1e-6)


def losses(model, start, ac):
  traj = imagine(model, ac.actor, start, is_terminal(), H, ac.discount)
  traj['reward'], _ = ac.reward_norm(reward_fn(model)(traj))
  target, value, _ = ac.target(traj)
  actor_loss, _ = ac.actor_loss(traj, target, value)
  critic_loss, _ = ac.critic_loss(traj, target)
  return traj, actor_loss, critic_loss


@pytest.mark.parametrize('setup', ['discrete_setup', 'box_setup'])
def test_auto_choices(setup, request):
  _, _, ac = request.getfixturevalue(setup)
  # The fixtures bind @objectives.Auto, the reference's `actor_grad: auto`.
  assert isinstance(ac.objective, objectives.Auto)
  if setup == 'discrete_setup':
    assert ac.actor_dist == 'onehot'
    assert isinstance(ac.objective.chosen, objectives.Reinforce)
  else:
    assert ac.actor_dist == 'trunc_normal'
    assert isinstance(ac.objective.chosen, objectives.Dynamics)


@pytest.mark.parametrize('setup', ['discrete_setup', 'box_setup'])
def test_every_actor_and_critic_variable_gets_a_gradient(setup, request):
  model, start, ac = request.getfixturevalue(setup)
  losses(model, start, ac)   # Builds the layers.
  with tf.GradientTape(persistent=True) as tape:
    _, actor_loss, critic_loss = losses(model, start, ac)
  for loss, layer in ((actor_loss, ac.actor), (critic_loss, ac.critic)):
    assert layer.trainable_variables
    grads = tape.gradient(loss, layer.trainable_variables)
    for var, grad in zip(layer.trainable_variables, grads):
      assert grad is not None, var.path
      assert np.abs(tf.convert_to_tensor(grad).numpy()).sum() > 0, var.path


def test_reinforce_keeps_the_world_model_out_of_the_actor_loss(discrete_setup):
  model, start, ac = discrete_setup
  with tf.GradientTape() as tape:
    _, actor_loss, _ = losses(model, start, ac)
  grads = tape.gradient(actor_loss, model.trainable_variables)
  assert model.trainable_variables
  for grad in grads:
    assert grad is None or np.abs(tf.convert_to_tensor(grad).numpy()).sum() == 0


def test_dynamics_backpropagates_through_the_rssm(box_setup):
  model, start, ac = box_setup
  img_vars = (model.dynamics.img_in.trainable_variables +
              model.dynamics.cell.trainable_variables +
              model.dynamics.img_dist.trainable_variables)
  with tf.GradientTape(persistent=True) as tape:
    _, actor_loss, _ = losses(model, start, ac)
  for var, grad in zip(img_vars, tape.gradient(actor_loss, img_vars)):
    assert grad is not None and np.abs(grad.numpy()).sum() > 0, var.path
  reward_vars = model.heads['reward'].trainable_variables
  assert all(g is not None for g in tape.gradient(actor_loss, reward_vars))
  actor_grads = tape.gradient(actor_loss, ac.actor.trainable_variables)
  assert all(np.abs(g.numpy()).sum() > 0 for g in actor_grads)


def values(layer):
  return [v.numpy().copy() for v in layer.variables]


def test_train_and_the_slow_critic_schedule(discrete_setup):
  model, start, ac = discrete_setup   # slow_target_update=2
  train = lambda: ac.train(model, start, is_terminal(), reward_fn(model))
  ac.updates.assign(0)
  ac.critic(model.dynamics.get_feat(start))  # Built, so its first weights are known.
  initial = values(ac.critic)
  metrics = train()
  for key in ('actor_loss', 'critic_loss', 'actor_grad_norm', 'critic_grad_norm',
              'actor_ent', 'actor_ent_scale', 'reward_mean', 'reward_std',
              'critic_slow', 'critic_target', 'critic'):
    assert np.isfinite(float(metrics[key])), key
  # Update 0 copied the critic *before* training it (as the reference), so its
  # targets came from the critic, not from the slow critic's random initial weights.
  for s, c in zip(values(ac.slow_critic), initial):
    np.testing.assert_array_equal(s, c)
  assert any(not np.array_equal(a, b) for a, b in zip(initial, values(ac.critic)))
  train()   # update 1: no copy, the critic moves on.
  for s, c in zip(values(ac.slow_critic), initial):
    np.testing.assert_array_equal(s, c)
  trained = values(ac.critic)
  train()   # update 2: copies the critic as updates 0 and 1 left it, then trains it.
  for s, c in zip(values(ac.slow_critic), trained):
    np.testing.assert_array_equal(s, c)
  assert any(not np.array_equal(a, b) for a, b in zip(trained, values(ac.critic)))
  assert int(ac.updates) == 3


def test_continuous_trains_one_step(box_setup):
  model, start, ac = box_setup
  before = values(ac.actor)
  metrics = ac.train(model, start, is_terminal(), reward_fn(model))
  assert np.isfinite(float(metrics['actor_loss']))
  assert any(not np.array_equal(a, b) for a, b in zip(before, values(ac.actor)))


@pytest.mark.parametrize('name', objectives.registry.names(builtin_only=True))
def test_each_registered_objective_trains(name):
  cls = objectives.registry.get(name)
  model = LatentModel(2, discount_head=False)
  step = tf.Variable(0, dtype=tf.int64)
  ac = make_ac(BOX, step, objective=cls, actor_ent='linear(1e-3,0,100)')
  assert type(ac.objective) is cls and ac.objective.act_space is BOX
  metrics = ac.train(model, model.posterior(), None, reward_fn(model))
  assert np.isfinite(float(metrics['actor_loss']))
  assert np.isfinite(float(metrics['critic_loss']))


def test_bad_configuration_is_a_user_error():
  from dreamkit.errors import UserError
  step = tf.Variable(0, dtype=tf.int64)
  with pytest.raises(UserError, match='actor_ent'):
    make_ac(BOX, step, actor_ent='lin(1,2)')
  with pytest.raises(UserError, match='ActorCritic: act_space'):
    make_ac(gymnasium.spaces.MultiBinary(3), step)


def as_in_a_new_process():
  """Restart Keras's process-wide layer numbering (mlp_head, mlp_head_1, ...), as a
  resumed run in a new process does (the names must not depend on it: see below)."""
  keras.utils.clear_session(free_memory=False)


def test_checkpoint_holds_critic_slow_critic_and_counters(tmp_path):
  from dreamkit.runner import checkpoint as checkpoint_lib
  model = LatentModel(3, discount_head=False)
  step = tf.Variable(0, dtype=tf.int64)
  as_in_a_new_process()
  ac = make_ac(DISCRETE, step)
  ac.train(model, model.posterior(), None, reward_fn(model))
  checkpoint_lib.Checkpoint(tmp_path, ac, checkpoint_lib.numpy_rng(0)).save()
  # Restoring into a fresh ActorCritic (built by one train step, as the pipeline
  # does) brings the whole slow critic back, hidden layers included.
  as_in_a_new_process()
  other = make_ac(DISCRETE, step)
  other.train(model, model.posterior(), None, reward_fn(model))
  other.slow_critic.variables[0].assign(tf.zeros_like(other.slow_critic.variables[0]))
  other.updates.assign(7)
  assert checkpoint_lib.Checkpoint(tmp_path, other, checkpoint_lib.numpy_rng(0)).restore()
  assert len(values(other.slow_critic)) > 2  # Hidden layers, not just the output.
  for a, b in zip(values(ac.slow_critic), values(other.slow_critic)):
    np.testing.assert_array_equal(a, b)
  assert int(other.updates) == 1


def test_checkpoint_names_do_not_depend_on_what_the_process_built_before():
  from dreamkit.runner import checkpoint as checkpoint_lib
  model = LatentModel(3, discount_head=False)
  step = tf.Variable(0, dtype=tf.int64)
  names = []
  for _ in range(2):
    ac = make_ac(DISCRETE, step)
    ac.train(model, model.posterior(), None, reward_fn(model))
    names.append(list(checkpoint_lib.named_variables(ac)))
  assert names[0] == names[1]


@pytest.mark.parametrize('space', [DISCRETE, BOX])
def test_trains_under_mixed_bfloat16(space):
  from dreamkit import precision
  precision.set_precision('bf16')
  model = LatentModel(action_size(space))
  step = tf.Variable(0, dtype=tf.int64)
  ac = make_ac(space, step)
  metrics = ac.train(model, model.posterior(), is_terminal(), reward_fn(model))
  for key, value in metrics.items():
    assert np.all(np.isfinite(np.asarray(value))), key


def hand_made_trajectory(n=5, feat_size=32):
  """An imagined trajectory of H + 1 states for the discrete actor (N = n)."""
  rng = np.random.default_rng(3)
  action = np.eye(3, dtype=np.float32)[rng.integers(0, 3, (H + 1, n))]
  action[0] = 0
  disc = rng.uniform(0.5, 1.0, (H + 1, n)).astype(np.float32)
  traj = {
      'feat': tf.constant(rng.normal(size=(H + 1, n, feat_size)), tf.float32),
      'action': tf.constant(action),
      'reward': tf.constant(rng.normal(size=(H + 1, n)), tf.float32),
      'discount': tf.constant(disc),
      'weight': tf.constant(np.cumprod(np.concatenate([np.ones((1, n)), disc[:-1]]), 0),
                            tf.float32),
  }
  return traj, action, disc


def actor_log_probs_and_entropy(ac, traj):
  logits = ac.actor(traj['feat'][:-2]).logits_parameter().numpy()
  logp = logits - logits.max(-1, keepdims=True)
  logp -= np.log(np.exp(logp).sum(-1, keepdims=True))
  return logp, -(np.exp(logp) * logp).sum(-1)


def test_target_and_losses_on_a_hand_made_trajectory_match_numpy(discrete_setup):
  """ActorCritic's wiring: which critic, which slice, which weight."""
  _, _, ac = discrete_setup
  traj, action, disc = hand_made_trajectory()
  n = action.shape[1]
  # Make the two critics differ so that using the wrong one shows.
  for var in ac.slow_critic.variables:
    var.assign(var + 0.1)
  slow = ac.slow_critic(traj['feat']).mode().numpy()
  value = ac.critic(traj['feat']).mode().numpy()
  reward, weight, lam = traj['reward'].numpy(), traj['weight'].numpy(), ac.discount_lambda
  expected = np.zeros((H, n), np.float32)
  following = slow[H]
  for t in reversed(range(H)):
    following = reward[t] + disc[t] * ((1 - lam) * slow[t + 1] + lam * following)
    expected[t] = following
  target, target_value, _ = ac.target(traj)
  np.testing.assert_allclose(target.numpy(), expected, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(target_value.numpy(), slow, rtol=1e-5, atol=1e-6)

  critic_loss, _ = ac.critic_loss(traj, target)
  log_prob = -0.5 * (expected - value[:H]) ** 2 - 0.5 * np.log(2 * np.pi)
  assert float(critic_loss) == pytest.approx(-(weight[:H] * log_prob).mean(), rel=1e-5)

  actor_loss, metrics = ac.actor_loss(traj, target, target_value)
  logp, entropy = actor_log_probs_and_entropy(ac, traj)
  advantage = expected[1:] - slow[:H - 1]
  objective = (logp * action[1:-1]).sum(-1) * advantage
  scale = float(metrics['actor_ent_scale'])
  assert scale == pytest.approx(2e-3)
  expected_loss = -(weight[:H - 1] * (objective + scale * entropy)).mean()
  assert float(actor_loss) == pytest.approx(expected_loss, rel=1e-5)


def test_return_norm_divides_the_advantages_by_the_running_percentile_range(discrete_setup):
  _, _, ac = discrete_setup
  traj, action, _ = hand_made_trajectory()
  weight = traj['weight'].numpy()
  target, value, _ = ac.target(traj)
  target, value = target.numpy(), value.numpy()
  low, high = np.percentile(target, [10, 90])
  logp, entropy = actor_log_probs_and_entropy(ac, traj)
  ent = float(ac.actor_ent(ac.step))
  assert ac.return_norm is None  # Off in the reference.
  ac.return_norm = ReturnNorm(decay=0.5, low=10, high=90, limit=1e-3)
  try:
    # The running percentiles start at 0 and move half way each call: 1/2, 3/4.
    for call, moved in enumerate((0.5, 0.75)):
      loss, metrics = ac.actor_loss(traj, tf.constant(target), tf.constant(value))
      scale = moved * (high - low)
      assert float(metrics['actor_return_scale']) == pytest.approx(scale, rel=1e-5)
      assert float(metrics['actor_return_low']) == pytest.approx(moved * low, rel=1e-5)
      advantage = (target[1:] - value[:H - 1]) / scale
      objective = (logp * action[1:-1]).sum(-1) * advantage + ent * entropy
      expected = -(weight[:H - 1] * objective).mean()
      assert float(loss) == pytest.approx(expected, rel=1e-5), call
    # A spread below the limit is left as it is.
    ac.return_norm.limit = 1e6
    loss, metrics = ac.actor_loss(traj, tf.constant(target), tf.constant(value))
    assert float(metrics['actor_return_scale']) == 1e6
  finally:
    ac.return_norm = None


def test_return_norm_is_checkpointed_only_when_on():
  step = tf.Variable(0, dtype=tf.int64)
  # The reference's checkpoints (without it) keep restoring.
  assert 'return_norm' not in make_ac(DISCRETE, step).state()
  norm = make_ac(DISCRETE, step, return_norm=True).state()['return_norm']
  assert norm.state()['range'].shape == (2,)
  with pytest.raises(ConfigError, match='return_norm_low.*below.*return_norm_high'):
    make_ac(DISCRETE, step, return_norm=True, return_norm_low=95, return_norm_high=5)
  with pytest.raises(ConfigError, match='return_norm_decay'):
    make_ac(DISCRETE, step, return_norm=True, return_norm_decay=1.0)


# The factories an ActorCritic is given in gin, as pipelines/dreamerv2_defaults.gin binds them.
GIN_SLOTS = """
ActorCritic.actor = @actor/heads.MLPHead
ActorCritic.critic = @critic/heads.MLPHead
ActorCritic.objective = @objectives.Auto
ActorCritic.discount = 0.99
ActorCritic.imag_horizon = 3
heads.MLPHead.layers = 2
heads.MLPHead.units = 16
"""


def test_actor_dist_is_set_on_the_actor_critic_not_read_from_the_head():
  """'auto' no longer reads `actor/heads.MLPHead.dist`: the owner passes `dist`."""
  from dreamkit import config
  step = tf.Variable(0, dtype=tf.int64)
  gin.parse_config(GIN_SLOTS + "actor/heads.MLPHead.dist = 'tanh_normal'")
  ac = gin.get_configurable(ActorCritic)(BOX, step)
  assert ac.actor_dist == 'trunc_normal'
  assert ac.actor.head.dist == 'trunc_normal'
  # The head binding is dead, and reported as such after the build.
  assert config.unused_bindings() == ['actor/heads.MLPHead.dist']
  gin.clear_config()
  gin.parse_config(GIN_SLOTS + "ActorCritic.actor_dist = 'tanh_normal'")
  ac = gin.get_configurable(ActorCritic)(BOX, step)
  assert ac.actor_dist == 'tanh_normal'
  assert ac.actor.head.dist == 'tanh_normal'
  assert config.unused_bindings() == []
  gin.clear_config()
  ac = make_ac(BOX, step, actor_dist='tanh_normal')
  assert ac.actor.head.dist == 'tanh_normal'


def test_objective_is_bound_as_a_factory_in_gin():
  gin.parse_config("""
ActorCritic.objective = @objectives.Both
objectives.Both.mix = 'linear(0.1,0,100)'
ActorCritic.actor_ent = 'warmup(10,1e-3)'
""")
  step = tf.Variable(5, dtype=tf.int64)
  ac = gin.get_configurable(ActorCritic)(BOX, step, actor=Head, critic=Head, discount=0.99)
  assert isinstance(ac.objective, objectives.Both)
  assert ac.objective.act_space is BOX   # The owner called the factory.
  assert float(ac.objective.mix(step)) == pytest.approx(0.095)
  assert float(ac.actor_ent(step)) == pytest.approx(5e-4)


def test_a_factory_of_something_else_is_a_config_error():
  step = tf.Variable(0, dtype=tf.int64)
  with pytest.raises(ConfigError, match='`objectives` registry'):
    make_ac(BOX, step, objective=lambda space: 'reinforce')


@pytest.mark.parametrize('slot, wrong', [
    ('objective', objectives.Both(BOX)), ('objective', None), ('actor', Head((2,))),
    ('critic', None)])
def test_an_instance_or_none_where_a_factory_is_expected_is_a_config_error(slot, wrong):
  step = tf.Variable(0, dtype=tf.int64)
  with pytest.raises(ConfigError, match='without parentheses') as error:
    make_ac(BOX, step, **{slot: wrong})
  assert f'ActorCritic.{slot}' in str(error.value)


def test_replay_critic_learns_the_replayed_returns_and_is_off_without_replay(discrete_setup):
  """The replay loss: the critic at the replayed posterior states, the returns of the
  replay's rewards and terminations (returns.replay_return), and a gradient for it."""
  from dreamkit.behavior.returns import replay_return
  model, start, _ = discrete_setup
  step = tf.Variable(0, dtype=tf.int64)
  ac = make_ac(DISCRETE, step, replay_critic=0.5)
  rng = np.random.default_rng(5)
  replay = {'reward': tf.constant(rng.normal(size=(B, T)), tf.float32),
            'is_terminal': is_terminal(),
            'is_first': tf.constant([[True, False, False, True], [True] + [False] * 3])}
  feat = model.dynamics.get_feat(start)                       # [B, T, F]
  flat = tf.reshape(feat, [B * T, -1])
  boot = tf.constant(rng.normal(size=(B * T,)) * 5, tf.float32)
  ac.create_variables(flat)
  with tf.GradientTape() as tape:
    loss, metrics = ac.replay_critic_loss(flat, boot, replay)
  target, weight = replay_return(
      replay['reward'], replay['is_terminal'], replay['is_first'],
      tf.reshape(boot, [B, T]), 0.99, 0.95)
  want = -np.mean(ac.critic(feat).log_prob(target).numpy() * weight.numpy())
  assert float(loss) == pytest.approx(want, rel=1e-5)
  assert weight.numpy()[0, 2] == 1 and weight.numpy()[1, 3] == 0
  grads = tape.gradient(loss, ac.critic.trainable_variables)
  assert all(g is not None and np.abs(g.numpy()).sum() > 0 for g in grads)
  assert set(metrics) == {'critic_replay_loss', 'critic_replay_target', 'critic_replay'}
  # Wired into train: the metrics appear with the replay, and not without it
  # (Plan2Explore's intrinsic reward has no replayed counterpart).
  with_replay = ac.train(model, start, is_terminal(), reward_fn(model), replay)
  assert 'critic_replay_loss' in with_replay
  without = ac.train(model, start, is_terminal(), reward_fn(model))
  assert 'critic_replay_loss' not in without
  with pytest.raises(ConfigError, match='replay_critic'):
    make_ac(DISCRETE, step, replay_critic=-0.1)
