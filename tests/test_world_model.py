"""WorldModel: output shapes, gradients reach every part, training, video, gin."""

import functools

import gin
import gymnasium as gym
import numpy as np
import pytest
import tensorflow as tf

from dreamkit.errors import ConfigError
from dreamkit.networks import dynamics as dynamics_lib
from dreamkit.networks import encoders, heads
from dreamkit.world_model import WorldModel

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


def tiny_model(spaces, latent='CategoricalRSSM', **kwargs):
  decoder = lambda shapes: heads.DreamerDecoder(
      shapes, cnn_depth=4, cnn_kernels=(2, 2, 2, 2), mlp_layers=2, mlp_units=16)
  # The world model passes dist='binary' to the discount factory: a partial takes it.
  mlp = lambda **kw: functools.partial(heads.MLPHead, layers=2, units=16, **kw)
  return WorldModel(
      spaces, gym.spaces.Discrete(ACTIONS),
      encoder=encoders.DreamerEncoder(
          cnn_depth=4, cnn_kernels=(2, 2, 2, 2), mlp_layers=2, mlp_units=16),
      dynamics=dynamics_lib.registry.get(latent)(
          deter=16, hidden=16, **LATENTS[latent][0]),
      decoder=decoder, reward_head=mlp(), discount_head=mlp(), **kwargs)


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
  assert sorted(metrics) == sorted(
      [f'{k}_loss' for k in keys + ['kl']] + ['model_kl', 'prior_ent', 'post_ent'])
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


GIN = """
import dreamkit.world_model
WorldModel.dynamics = @dynamics.GaussianRSSM()
dynamics.GaussianRSSM.deter = 16
dynamics.GaussianRSSM.hidden = 16
dynamics.GaussianRSSM.stoch = 4
encoders.DreamerEncoder.cnn_depth = 4
encoders.DreamerEncoder.cnn_kernels = (2, 2, 2, 2)
encoders.DreamerEncoder.mlp_layers = 1
encoders.DreamerEncoder.mlp_units = 8
heads.DreamerDecoder.cnn_depth = 4
heads.DreamerDecoder.cnn_kernels = (2, 2, 2, 2)
heads.DreamerDecoder.mlp_layers = 1
heads.DreamerDecoder.mlp_units = 8
heads.MLPHead.layers = 1
heads.MLPHead.units = 8
WorldModel.kl_free = 1.0
"""


def test_gaussian_rssm_from_one_gin_line():
  gin.parse_config(GIN)
  spaces = make_spaces(image=False)
  wm = gin.get_configurable('dreamkit.WorldModel')(spaces, gym.spaces.Discrete(ACTIONS))
  assert isinstance(wm.dynamics, dynamics_lib.GaussianRSSM)
  assert wm.dynamics.deter == 16 and wm.kl['free'] == 1.0
  assert wm.heads['discount'].head.dist == 'binary'
  state, outputs, metrics = wm.train(make_batch(spaces))
  assert set(state) == {'mean', 'std', 'stoch', 'deter'}
  assert outputs['feat'].shape == (B, T, 4 + 16)
  assert np.isfinite(float(metrics['model_loss']))
  assert float(metrics['model_skipped']) == 0


def test_class_where_instance_expected_and_factory_heads():
  gin.parse_config("""
import dreamkit.world_model
WorldModel.dynamics = @dynamics.GaussianRSSM
WorldModel.reward_head = @reward/heads.MLPHead
reward/heads.MLPHead.dist = 'normal'
""")
  wm = gin.get_configurable('dreamkit.WorldModel')(
      make_spaces(image=False), gym.spaces.Discrete(ACTIONS))
  assert isinstance(wm.dynamics, dynamics_lib.GaussianRSSM)
  assert wm.heads['reward'].head.dist == 'normal'
  assert wm.heads['discount'].head.dist == 'binary'


def test_config_errors():
  spaces = make_spaces()
  act = gym.spaces.Discrete(ACTIONS)
  with pytest.raises(ConfigError, match='loss_scales'):
    WorldModel(spaces, act, loss_scales={'imgae': 1.0})
  with pytest.raises(ConfigError, match='grad_heads'):
    WorldModel(spaces, act, grad_heads=('decoder', 'value'))
  with pytest.raises(ConfigError, match='clip_rewards'):
    WorldModel(spaces, act, clip_rewards='clip')
  with pytest.raises(ConfigError, match='Encoder'):
    WorldModel(spaces, act, encoder=heads.MLPHead)
  with pytest.raises(ValueError, match='kl_balanse'):
    gin.parse_config('import dreamkit.world_model\nWorldModel.kl_balanse = 0.5')


def test_docs_list_every_component_and_parameter():
  from pathlib import Path
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
