"""The fake env, and `dreamkit.envs.make` choosing env classes by prefix."""

import subprocess
import sys

import gin
import numpy as np
import pytest
from gymnasium import spaces

from dreamkit import envs
from dreamkit.envs import wrappers
from dreamkit.errors import UserError


def _episode(env, policy):
  obs = env.reset()
  steps = [obs]
  while not obs['is_last']:
    obs = env.step(policy(obs))
    steps.append(obs)
  return steps


def test_discrete_step_dicts_follow_the_contract():
  env = envs.make('fake:discrete', seed=0)
  obs = env.reset()
  assert obs['image'].shape == (16, 16, 1) and obs['image'].dtype == np.uint8
  assert obs['vector'].shape == (4,) and obs['vector'].dtype == np.float32
  assert obs['reward'].dtype == np.float32
  assert obs['is_first'] and not obs['is_last'] and not obs['is_terminal']
  for key, space in env.obs_space.items():
    assert space.shape == np.shape(obs[key]), key
    assert space.dtype == np.asarray(obs[key]).dtype, key
  assert env.act_space.n == 3


def test_reward_depends_on_the_action():
  env = envs.make('fake:discrete', seed=1, terminal_prob=0.0)
  target = lambda obs: int(np.argmax(obs['vector'][:3]))
  good = _episode(env, lambda obs: np.eye(3)[target(obs)])
  bad = _episode(env, lambda obs: (target(obs) + 1) % 3)
  assert all(step['reward'] == 1 for step in good[1:])
  assert all(step['reward'] == 0 for step in bad[1:])
  # The image shows the same target as a bright band.
  obs = env.reset()
  assert obs['image'][:, :5].mean() == (255 if target(obs) == 0 else 0)


def test_continuous_reward_peaks_at_the_target():
  env = envs.make('fake:continuous', dim=2, seed=2, image=False)
  obs = env.reset()
  assert env.act_space.shape == (2,) and not envs.is_discrete(env.act_space)
  assert 'image' not in obs
  best = env.step(obs['vector'][:2])
  assert best['reward'] == pytest.approx(1.0)
  worse = env.step(-best['vector'][:2])
  assert worse['reward'] < 1.0


def test_terminations_and_time_limit_cuts_both_happen():
  env = envs.make('fake:discrete', seed=3, length=10, terminal_prob=0.1)
  ends = []
  for _ in range(30):
    steps = _episode(env, lambda obs: 0)
    last = steps[-1]
    ends.append(last['is_terminal'])
    if not last['is_terminal']:
      assert len(steps) == 11  # Cut at the length: is_last without is_terminal.
    assert not any(step['is_last'] for step in steps[:-1])
  assert any(ends) and not all(ends)


def test_same_seed_same_episode():
  first = _episode(envs.make('fake:discrete', seed=4), lambda obs: 1)
  second = _episode(envs.make('fake:discrete', seed=4), lambda obs: 1)
  assert len(first) == len(second)
  for a, b in zip(first, second):
    np.testing.assert_array_equal(a['image'], b['image'])
    assert a['reward'] == b['reward']


def test_unknown_fake_task():
  with pytest.raises(UserError, match='fake:discrete'):
    envs.make('fake:bogus')


def test_make_applies_gin_bindings_and_overrides_win():
  gin.parse_config('envs.Fake.length = 4\nenvs.Fake.terminal_prob = 0.0')
  assert len(_episode(envs.make('fake:discrete'), lambda obs: 0)) == 5
  assert len(_episode(envs.make('fake:discrete', length=2), lambda obs: 0)) == 3


def test_make_rejects_bad_task_strings():
  with pytest.raises(UserError, match="Did you mean 'atari:pong'"):
    envs.make('atary:pong')
  with pytest.raises(UserError, match='prefix:name'):
    envs.make('pong')
  with pytest.raises(UserError, match='Available prefixes: atari, dmc, fake, gym'):
    envs.make('xyz:pong')


def test_builtins_are_registered_with_their_prefixes():
  assert envs.prefixes() == {'atari': 'Atari', 'dmc': 'DMC', 'fake': 'Fake', 'gym': 'Gym'}
  assert set(envs.registry.names()) >= {'Atari', 'DMC', 'Fake', 'Gym'}


def test_action_conversion_helpers():
  assert wrappers.discrete_index(2, 3) == 2
  assert wrappers.discrete_index(np.array([0, 0, 1.0]), 3) == 2
  with pytest.raises(ValueError):
    wrappers.discrete_index(np.zeros(4), 3)
  with pytest.raises(ValueError):
    wrappers.discrete_index(5, 3)
  scaled = wrappers.rescale_action([-1.0, 0.0, 1.0, 2.0], [0, -2, 10, -1], [1, 2, 20, 1])
  np.testing.assert_allclose(scaled, [0.0, 0.0, 20.0, 1.0])


def test_importing_envs_does_not_import_tensorflow():
  # Spawned workers import this package; TensorFlow there would break MuJoCo rendering.
  code = 'import sys, dreamkit.envs; print("tensorflow" in sys.modules)'
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                          check=True)
  assert result.stdout.strip() == 'False'


def test_docs_list_every_env_option():
  from pathlib import Path
  docs = (Path(__file__).parent.parent / 'docs' / 'envs.md').read_text()
  for entry in envs.registry.entries(builtin_only=True):
    section = docs.split(f'(`envs.{entry.name}`)', 1)
    assert len(section) == 2, f'docs/envs.md has no section for envs.{entry.name}'
    options = section[1].split('\n\n', 2)[1]
    for name, default in entry.parameters:
      if name != 'task':
        assert f'{name}={default!r}' in options.replace('\n', ' '), (entry.name, name)


@pytest.mark.parametrize('field,value,message', [
    ('act_space', spaces.MultiDiscrete([2, 3]), 'act_space MultiDiscrete.*not supported'),
    ('act_space', spaces.Box(0, 1, (2,), np.float32), 'act_space Box.*not supported'),
    ('act_space', None, 'act_space None is not supported'),
    ('obs_space', None, 'obs_space must be a dict'),
    ('obs_space', {'text': spaces.Text(5)}, 'obs_space must be a dict'),
    ('obs_space', {'vector': wrappers.vector_space(3)}, "obs_space needs.*'reward'"),
    ('obs_space', wrappers.obs_space({}), 'obs_space needs at least one observation key'),
])
def test_an_env_with_spaces_the_agent_cannot_handle_is_refused(field, value, message):
  env = envs.Fake('discrete')
  envs.check_spaces(env, 'fake:discrete')  # The built-in passes.
  setattr(env, field, value)
  with pytest.raises(UserError, match=f'Fake \\(my:task\\): {message}'):
    envs.check_spaces(env, 'my:task')
