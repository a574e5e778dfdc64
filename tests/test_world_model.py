"""WorldModel: output shapes, gradients reach every part, training, video, gin."""

import functools
from pathlib import Path

import gin
import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from dreamkit.errors import ConfigError
from dreamkit.networks import dynamics as dynamics_lib
from dreamkit.networks import encoders, heads
from dreamkit.world_model import WorldModel, terminal_weights

B, T, ACTIONS = 2, 4, 3
LATENTS = {
    'CategoricalRSSM': (dict(stoch=4, discrete=4), 16 + 16),
    'GaussianRSSM': (dict(stoch=4), 4 + 16),
}


def make_spaces(image=True, vector=True, size=16, channels=3):
  spaces = {
      'reward': gym.spaces.Box(-np.inf, np.inf, (), np.float32),
      'is_first': gym.spaces.Box(0, 1, (), bool),
      'is_last': gym.spaces.Box(0, 1, (), bool),
      'is_terminal': gym.spaces.Box(0, 1, (), bool),
  }
  if image:
    spaces['image'] = gym.spaces.Box(0, 255, (size, size, channels), np.uint8)
  if vector:
    spaces['vector'] = gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)
  return spaces


def make_batch(spaces, batch=B, length=T, seed=0):
  rng = np.random.default_rng(seed)
  data = {}
  for key, space in spaces.items():
    shape = (batch, length) + space.shape
    if space.dtype == np.uint8:
      data[key] = rng.integers(0, 256, shape).astype(np.uint8)
    elif space.dtype == bool:
      data[key] = np.zeros(shape, bool)
    else:
      data[key] = rng.normal(size=shape).astype(np.float32)
  data['is_first'][:, 0] = True
  data['is_terminal'][0, -1] = True
  data['action'] = np.eye(ACTIONS, dtype=np.float32)[rng.integers(0, ACTIONS, (batch, length))]
  data['log_note'] = np.zeros((batch, length), np.float32)
  return data


def tiny_parts(latent='CategoricalRSSM'):
  """The tiny world model's part factories (no instances) and discount, by name."""
  keys = dict(cnn_keys='image', mlp_keys='.*', cnn_depth=4, cnn_kernels=(2, 2, 2, 2),
              mlp_layers=2, mlp_units=16)
  # The world model passes dist='binary' to the discount factory: a partial takes it.
  mlp = functools.partial(heads.MLPHead, layers=2, units=16)
  return dict(
      encoder=functools.partial(encoders.DreamerEncoder, **keys),
      dynamics=functools.partial(
          dynamics_lib.registry.get(latent), deter=16, hidden=16, **LATENTS[latent][0]),
      decoder=functools.partial(heads.DreamerDecoder, **keys),
      reward_head=mlp, discount_head=mlp, discount=0.99)


def tiny_model(spaces, latent='CategoricalRSSM', **kwargs):
  """A tiny WorldModel; `kwargs` replace its parts or set its other arguments."""
  return WorldModel(
      spaces, gym.spaces.Discrete(ACTIONS), **{**tiny_parts(latent), **kwargs})


def modules(wm):
  return [wm.encoder, wm.dynamics, *wm.heads.values()]


@pytest.mark.parametrize('latent', sorted(LATENTS))
@pytest.mark.parametrize('image,vector', [(True, False), (False, True), (True, True)])
def test_output_shapes(latent, image, vector):
  spaces = make_spaces(image, vector)
  wm = tiny_model(spaces, latent)
  loss, state, outputs, metrics = wm.compute_loss(wm.preprocess(make_batch(spaces)))
  embed = (32 if image else 0) + (16 if vector else 0)
  feat = LATENTS[latent][1]
  assert loss.shape == () and loss.dtype == tf.float32
  assert outputs['embed'].shape == (B, T, embed)
  assert outputs['feat'].shape == (B, T, feat)
  assert outputs['kl'].shape == (B, T)
  for part in ('post', 'prior'):
    assert {k: v.shape[:2] for k, v in outputs[part].items()} == {
        k: (B, T) for k in outputs[part]}
  assert {k: v.shape for k, v in state.items()} == {
      k: v.shape[:1] + v.shape[2:] for k, v in outputs['post'].items()}
  keys = ['image'] * image + ['vector'] * vector + ['reward', 'discount']
  assert sorted(outputs['likes']) == sorted(keys)
  assert all(v.shape == (B, T) for v in outputs['likes'].values())
  # batch_terminal: the share of replayed steps that end an episode.
  assert sorted(metrics) == sorted(
      [f'{k}_loss' for k in keys + ['kl']] +
      ['model_kl', 'prior_ent', 'post_ent', 'batch_terminal'])
  assert float(metrics['batch_terminal']) == 1 / (B * T)
  assert sorted(wm.heads) == ['decoder', 'discount', 'reward']


def test_preprocess():
  spaces = make_spaces()
  batch = make_batch(spaces)
  batch['image'][0, 0, 0, 0] = [0, 255, 128]
  data = tiny_model(spaces, discount=0.9).preprocess(batch)
  np.testing.assert_allclose(
      data['image'][0, 0, 0, 0], [-0.5, 0.5, 128 / 255 - 0.5], atol=1e-6)
  assert data['image'].dtype == tf.float32
  np.testing.assert_allclose(data['reward'], np.tanh(batch['reward']), rtol=1e-6)
  want = 0.9 * (1 - batch['is_terminal'].astype(np.float32))
  np.testing.assert_allclose(data['discount'], want)
  assert data['discount'][0, -1] == 0
  assert data['is_first'].dtype == tf.bool
  identity = tiny_model(spaces, clip_rewards='identity').preprocess(batch)
  np.testing.assert_allclose(identity['reward'], batch['reward'])


@pytest.fixture(scope='module')
def mixed():
  spaces = make_spaces()
  return tiny_model(spaces, model_lr=1e-3), make_batch(spaces)


def test_every_variable_gets_a_gradient(mixed):
  """Silent non-training (a part whose variables get no gradient) is the classic bug."""
  wm, batch = mixed
  with tf.GradientTape() as tape:
    loss, _, _, _ = wm.compute_loss(wm.preprocess(batch))
  for module in modules(wm):
    variables = module.trainable_variables
    assert variables, module.name
  variables = [v for module in modules(wm) for v in module.trainable_variables]
  grads = tape.gradient(loss, variables)
  missing = [v.path for v, g in zip(variables, grads)
             if g is None or not np.any(g.numpy())]
  assert not missing, missing
  assert len(variables) == len(wm.trainable_variables)


def grads_of(wm, batch, variables, part=None, **kwargs):
  with tf.GradientTape() as tape:
    loss, _, outputs, _ = wm.compute_loss(wm.preprocess(batch))
    if part is not None:
      loss = -tf.reduce_mean(outputs['likes'][part])
  return tape.gradient(loss, variables)


def test_heads_outside_grad_heads_send_no_gradient_to_the_representation():
  spaces = make_spaces(image=False)
  wm = tiny_model(spaces, grad_heads=('decoder',))
  batch = make_batch(spaces)
  wm.compute_loss(wm.preprocess(batch))
  representation = wm.encoder.trainable_variables + wm.dynamics.trainable_variables
  for part in ('reward', 'discount'):
    grads = grads_of(wm, batch, representation, part)
    assert all(g is None or not np.any(g.numpy()) for g in grads), part
    head = wm.heads[part].trainable_variables
    assert all(np.any(g.numpy()) for g in grads_of(wm, batch, head, part))
  # The decoder is in grad_heads, so its loss does reach the encoder.
  grads = grads_of(wm, batch, wm.encoder.trainable_variables, 'vector')
  assert all(g is not None and np.any(g.numpy()) for g in grads)


def test_loss_scales_weight_the_loss_terms():
  spaces = make_spaces(image=False)
  scales = {'kl': 0.1, 'reward': 2.0, 'discount': 5.0, 'vector': 0.5}
  wm = tiny_model(spaces, loss_scales=scales)
  loss, _, _, metrics = wm.compute_loss(wm.preprocess(make_batch(spaces)))
  want = sum(scale * float(metrics[f'{k}_loss']) for k, scale in scales.items())
  assert float(loss) == pytest.approx(want, rel=1e-5)


def test_without_discount_head():
  spaces = make_spaces(image=False)
  wm = tiny_model(spaces, pred_discount=False)
  _, _, outputs, metrics = wm.compute_loss(wm.preprocess(make_batch(spaces)))
  assert 'discount' not in wm.heads and 'discount_loss' not in metrics


def test_training_lowers_the_loss(mixed):
  wm, batch = mixed
  wm.compute_loss(wm.preprocess(batch))
  before = {v.path: v.numpy().copy() for v in wm.trainable_variables}
  state, outputs, metrics = wm.train(batch)
  # The optimizer updates every part (the wrong module list would leave some alone).
  unchanged = [v.path for v in wm.trainable_variables
               if np.array_equal(before[v.path], v.numpy())]
  assert not unchanged, unchanged
  first = float(metrics['model_loss'])
  assert {'model_loss', 'model_grad_norm', 'model_loss_scale', 'model_skipped',
          'kl_loss', 'image_loss', 'reward_loss', 'discount_loss', 'model_kl',
          'prior_ent', 'post_ent'} <= set(metrics)
  assert state['deter'].shape == (B, 16) and outputs['feat'].shape == (B, T, 32)
  for _ in range(40):
    _, _, metrics = wm.train(batch)
  assert float(metrics['model_skipped']) == 0
  assert float(metrics['model_loss']) < first - 1.0
  # The returned state continues the sequence (eager: a retrace costs seconds).
  _, _, outputs, _ = wm.compute_loss(wm.preprocess(batch), state)
  assert outputs['feat'].shape == (B, T, 32)


def test_video_pred(mixed):
  wm, batch = mixed
  spaces = make_spaces()
  batch = make_batch(spaces, batch=7, length=8, seed=1)
  video = wm.video_pred(batch, 'image').numpy()
  assert video.shape == (6, 8, 3 * 16, 16, 3)
  assert video.min() >= 0 and video.max() <= 1
  np.testing.assert_allclose(video[:, :, :16], batch['image'][:6] / 255, atol=1e-6)
  with pytest.raises(ConfigError, match='image key'):
    wm.video_pred(batch, 'vector')
  # Chunks no longer than the observed context are reconstructions only.
  short = make_batch(spaces, batch=2, length=3, seed=2)
  assert wm.video_pred(short, 'image').shape == (2, 3, 3 * 16, 16, 3)


DEFAULTS = Path(__file__).resolve().parents[1] / 'pipelines' / 'dreamerv2_defaults.gin'


def tiny_gin(cnn_depth=4, mlp_layers=1, mlp_units=8, deter=16, stoch=4, discrete=4):
  """The slots and shared sizes of pipelines/dreamerv2_defaults.gin (every slot a
  factory, bound without parentheses), made tiny through its macros."""
  return f"""
include '{DEFAULTS}'
MLP_KEYS = '.*'
CNN_DEPTH = {cnn_depth}
MLP_LAYERS = {mlp_layers}
MLP_UNITS = {mlp_units}
DETER = {deter}
HIDDEN = {deter}
STOCH = {stoch}
DISCRETE = {discrete}
encoders.DreamerEncoder.cnn_kernels = (2, 2, 2, 2)
heads.DreamerDecoder.cnn_kernels = (2, 2, 2, 2)
"""


BASE_GIN = tiny_gin()
GIN = BASE_GIN + """
WorldModel.dynamics = @dynamics.GaussianRSSM
WorldModel.kl_free = 1.0
"""


def gin_model(config, spaces=None):
  gin.parse_config(config)
  return gin.get_configurable('dreamkit.WorldModel')(
      spaces or make_spaces(image=False), gym.spaces.Discrete(ACTIONS))


def test_gaussian_rssm_from_one_gin_line():
  spaces = make_spaces(image=False)
  wm = gin_model(GIN, spaces)
  assert isinstance(wm.dynamics, dynamics_lib.GaussianRSSM)
  assert wm.dynamics.deter == 16 and wm.kl['free'] == 1.0
  assert wm.heads['discount'].head.dist == 'binary'
  state, outputs, metrics = wm.train(make_batch(spaces))
  assert set(state) == {'mean', 'std', 'stoch', 'deter'}
  assert outputs['feat'].shape == (B, T, 4 + 16)
  assert np.isfinite(float(metrics['model_loss']))
  assert float(metrics['model_skipped']) == 0


def test_factory_heads_get_their_runtime_arguments():
  wm = gin_model(BASE_GIN + """
reward/heads.MLPHead.dist = 'normal'
discount/heads.MLPHead.dist = 'mse'
""")
  assert isinstance(wm.dynamics, dynamics_lib.CategoricalRSSM)
  assert wm.heads['reward'].head.dist == 'normal'
  assert wm.heads['reward'].shape == ()
  # The world model passes dist='binary', whatever the factory's bound dist.
  assert wm.heads['discount'].head.dist == 'binary'
  assert wm.heads['decoder'].vector_keys == ['vector']


@pytest.mark.parametrize('slot,value', [
    ('encoder', '@encoders.DreamerEncoder()'),
    ('dynamics', '@dynamics.GaussianRSSM()'),
    ('decoder', 'None'),
    ('reward_head', 'None'),
    ('discount_head', 'None'),
])
def test_an_instance_or_none_where_a_factory_is_expected(slot, value):
  """The one binding rule: every slot is a factory, bound without parentheses; an
  instance or None there (no registry default fills it in) is a ConfigError."""
  with pytest.raises(ConfigError, match=(
      f'WorldModel.{slot} must be a factory of .*bound without parentheses')):
    gin_model(BASE_GIN + f'WorldModel.{slot} = {value}\n')


def test_instances_and_none_refused_in_python_too():
  spaces = make_spaces(image=False)
  parts = tiny_parts()
  with pytest.raises(ConfigError, match='WorldModel.dynamics.*bound without parentheses'):
    tiny_model(spaces, dynamics=parts['dynamics']())
  with pytest.raises(ConfigError, match='WorldModel.encoder.*bound without parentheses'):
    tiny_model(spaces, encoder=None)
  # Without a discount head, None is its binding.
  wm = tiny_model(spaces, discount_head=None, pred_discount=False)
  assert sorted(wm.heads) == ['decoder', 'reward']


def test_config_errors():
  spaces = make_spaces()
  with pytest.raises(ConfigError, match='loss_scales'):
    tiny_model(spaces, loss_scales={'imgae': 1.0})
  with pytest.raises(ConfigError, match='grad_heads'):
    tiny_model(spaces, grad_heads=('decoder', 'value'))
  with pytest.raises(ConfigError, match='clip_rewards'):
    tiny_model(spaces, clip_rewards='clip')
  with pytest.raises(ConfigError, match='Encoder'):
    # A factory of another kind: what it builds is checked.
    tiny_model(spaces, encoder=functools.partial(heads.MLPHead, (), layers=1, units=4))
  with pytest.raises(ValueError, match='kl_balanse'):
    gin.parse_config('import dreamkit.world_model\nWorldModel.kl_balanse = 0.5')


def test_docs_list_every_component_and_parameter():
  text = (Path(__file__).parent.parent / 'docs' / 'world_model.md').read_text()
  for registry in (encoders.registry, dynamics_lib.registry, heads.registry):
    for entry in registry.entries(builtin_only=True):
      assert f'`{entry.gin_name}`' in text, entry.gin_name
      section = text.split(f'`{entry.gin_name}`', 1)[1].split('\n### ')[0]
      for name, _ in entry.parameters:
        assert f'`{name}`' in section, (entry.gin_name, name)
  import inspect
  for name in inspect.signature(WorldModel.__init__).parameters:
    if name not in ('self', 'obs_space', 'act_space'):
      assert f'`{name}`' in text, name


@pytest.mark.parametrize('weight', [1.0, 4.0, 'balanced'])
def test_terminal_weight_scales_the_terminal_steps_of_the_discount_loss(weight):
  spaces = make_spaces(image=False)
  wm = tiny_model(spaces, terminal_weight=weight)
  batch = make_batch(spaces)          # One terminal step of B * T.
  batch['is_terminal'][1, 3] = True   # Two.
  _, _, outputs, metrics = wm.compute_loss(wm.preprocess(batch))
  like = outputs['likes']['discount'].numpy()
  terminal = batch['is_terminal']
  factor = (terminal.size - 2) / 2 if weight == 'balanced' else weight
  want = -(like[~terminal].sum() + factor * like[terminal].sum()) / terminal.size
  assert float(metrics['discount_loss']) == pytest.approx(want, rel=1e-5)


def test_balanced_terminal_weights():
  weights = terminal_weights(tf.constant([[False, True, False, False]]), 'balanced')
  np.testing.assert_allclose(weights.numpy(), [[1.0, 3.0, 1.0, 1.0]])
  # No terminal step in the batch: every weight 1, not a division by zero.
  weights = terminal_weights(tf.zeros([2, 3], tf.bool), 'balanced')
  np.testing.assert_allclose(weights.numpy(), np.ones([2, 3]))


@pytest.mark.parametrize('weight', [0, -1.0, 'rare', None])
def test_terminal_weight_refused(weight):
  with pytest.raises(ConfigError, match='terminal_weight'):
    tiny_model(make_spaces(image=False), terminal_weight=weight)
