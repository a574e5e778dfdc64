"""Check before spending: a bad value is reported before the run writes anything.

Every value below is rejected by `dreamkit config --check` and by `dreamkit run`
with one line and exit 2, and `run` leaves no logdir behind: the envs and the agent
are built from the spaces before the logdir is created.
"""

from pathlib import Path

import pytest
from click.testing import CliRunner

from dreamkit import cli
from dreamkit.errors import ConfigError

PIPELINES = Path(__file__).resolve().parents[1] / 'pipelines'
# CartPole (vector observations, discrete actions) at the debug sizes: a real gym env,
# small networks. The tiny sizes keep each build well under a second.
BASE = [str(PIPELINES / 'cartpole_dreamerv2.gin'), str(PIPELINES / 'debug.gin'),
        '-b', 'Pipeline.outputs = [@outputs.JSONL]']

# (binding, fragments of the one-line message): what is wrong and what is accepted.
BAD = {
    'enum clip_rewards': (
        "WorldModel.clip_rewards = 'tanhh'", ['clip_rewards', 'tanh, identity, sign']),
    'enum actor_dist': (
        "ActorCritic.actor_dist = 'gauss'", ['ActorCritic.actor_dist', 'onehot']),
    'enum head dist': (
        "reward/heads.MLPHead.dist = 'gaussian'", ['gaussian', 'mse']),
    'enum norm': (
        "encoders.DreamerEncoder.norm = 'batch'", ['batch', 'layer']),
    'enum activation': (
        "heads.MLPHead.act = 'relux'", ['relux', 'elu']),
    'enum replay compression': (
        "replays.HDF5Replay.compression = 'zip'", ['compression', 'gzip', 'lzf']),
    'enum explorer target': (
        "explorers.Plan2Explore.disag_target = 'stochh'", ['disag_target', 'stoch']),
    'schedule unclosed': (
        "ActorCritic.actor_ent = 'linear(0.1,0,2.5e6'", ['actor_ent', 'linear(start,end,steps)']),
    'schedule misspelled': (
        "ActorCritic.actor_ent = 'lnear(0.1,0,2.5e6)'", ['actor_ent', 'linear(start,end,steps)']),
    'precision': ('Pipeline.precision = 8', ['precision', "'bf16'"]),
    'size zero': ('MLP_UNITS = 0', ['units', 'positive']),
    'size negative': ('DETER = -4', ['deter', 'positive']),
    'size fraction': ('STOCH = 2.5', ['stoch', 'whole']),
    'size of a Pipeline': ('Pipeline.batch_length = 0', ['batch_length', 'at least 1']),
    'size of a replay': ('replays.HDF5Replay.minlen = 0', ['minlen', 'positive']),
    'replay maxlen below minlen': ('replays.HDF5Replay.maxlen = 5', ['maxlen', 'minlen (10)']),
    'ensemble size': ('explorers.Plan2Explore.disag_models = 0', ['disag_models', 'at least 2']),
    'ensemble offset past the chunk': (
        'explorers.Plan2Explore.disag_offset = 50', ['disag_offset = 50', 'batch_length = 10']),
    'fraction': ('ActorCritic.discount_lambda = 1.5', ['discount_lambda', '[0, 1]']),
    'regex': ("MLP_KEYS = '(['", ['mlp_keys', 'regex']),
    'keys matching nothing': ("MLP_KEYS = 'nothing'", ['no observation key matches', 'MLP_KEYS']),
    'wrong env name': ("Pipeline.task = 'gym:CartPol-v1'", ['CartPol-v1', 'CartPole-v1']),
    'wrong env prefix': ("Pipeline.task = 'gymm:CartPole-v1'", ['gymm', 'gym']),
    'env value': ('envs.Gym.action_repeat = 0', ['action_repeat', 'positive']),
    'slot bound with parentheses': (
        'WorldModel.decoder = @heads.DreamerDecoder()', ['@heads.DreamerDecoder()',
                                                         'without parentheses']),
    'instance bound to a slot': (
        'WorldModel.encoder = @encoders.DreamerEncoder()', ['WorldModel.encoder',
                                                            'without parentheses']),
    'output value': ('outputs.JSONL.filename = ""', ['filename']),
    'agent noise': ('Agent.expl_noise = -1', ['expl_noise']),
    'bool as a string': ("WorldModel.pred_discount = 'False'", ['pred_discount', 'True or False']),
    'agent bool': ("Agent.compile = 'yes'", ['Agent.compile', 'True or False']),
    'learning rate': ('WorldModel.model_lr = 0', ['WorldModel.model_lr', '> 0']),
    'weight decay': ('ActorCritic.wd = 1.5', ['ActorCritic.wd', '[0, 1)']),
    'schedule without steps': (
        "ActorCritic.actor_ent = 'linear(0.1,0,0)'", ['actor_ent', 'must be positive']),
    'objective schedule': ("objectives.Both.mix = 'linear(0.1,0)'",
                           ['objectives.Both.mix', 'linear(start,end,steps)']),
    'categorical classes': ('DISCRETE = 1', ['CategoricalRSSM.discrete', 'at least 2']),
    'gaussian std activation': (
        "dynamics.GaussianRSSM.std_act = 'exp'", ['std_act', 'softplus, sigmoid, sigmoid2']),
    'kernel sizes': ('encoders.DreamerEncoder.cnn_kernels = (4, 0)',
                     ['cnn_kernels', 'positive whole numbers']),
    'imagination horizon': ('ActorCritic.imag_horizon = 1', ['imag_horizon', 'at least 2']),
    'grad heads': ("WorldModel.grad_heads = ['decoder', 'value']",
                   ['grad_heads', 'decoder, reward, discount']),
    'loss scale name': ("WorldModel.loss_scales = {'imgae': 1.0}", ['loss_scales', 'kl']),
    'actor dist for the space': (
        "ActorCritic.actor_dist = 'trunc_normal'", ['actor_dist', "'onehot'", 'Discrete(2)']),
    'evaluation period': ('Pipeline.eval_every = 0', ['eval_every', 'positive']),
    'seed': ('Pipeline.seed = -1', ['Pipeline.seed', '0 or more']),
    'precision as text': ("Pipeline.precision = 'fp16'", ['precision', "'bf16'"]),
    'env time limit': ('envs.Gym.time_limit = -1', ['envs.Gym.time_limit', '0 for none']),
    'env size': ('envs.Gym.size = (64,)', ['envs.Gym.size', 'pair']),
    'memory replay': ('replays.MemoryReplay.capacity = -1', ['MemoryReplay.capacity']),
    'tensorboard value': ('outputs.TensorBoard.fps = 0', ['outputs.TensorBoard.fps', '> 0']),
}
# A component's values are read only when that component is chosen.
CHOOSE = {
    'enum explorer target': ['-b', 'Pipeline.explorer = @explorers.Plan2Explore'],
    'ensemble size': ['-b', 'Pipeline.explorer = @explorers.Plan2Explore'],
    'ensemble offset past the chunk': ['-b', 'Pipeline.explorer = @explorers.Plan2Explore'],
    'objective schedule': ['-b', 'ActorCritic.objective = @objectives.Both'],
    'gaussian std activation': ['-b', 'WorldModel.dynamics = @dynamics.GaussianRSSM'],
    'memory replay': ['-b', 'Pipeline.replay = @replays.MemoryReplay'],
    'tensorboard value': ['-b', 'Pipeline.outputs = [@outputs.JSONL, @outputs.TensorBoard]'],
}


def _args(case):
  binding, _ = BAD[case]
  return [*BASE, *CHOOSE.get(case, []), '-b', binding]


def _assert_one_line_error(result, fragments):
  assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
  message = result.stderr.strip()
  assert message.startswith('Error: '), result.output
  assert len(message.splitlines()) == 1, message
  assert 'Traceback' not in result.output
  for fragment in fragments:
    assert fragment in message, (fragment, message)


@pytest.mark.parametrize('case', sorted(BAD))
def test_config_check_rejects(case):
  result = CliRunner().invoke(cli.cli, ['config', '--check', *_args(case)])
  _assert_one_line_error(result, BAD[case][1])


@pytest.mark.parametrize('case', sorted(BAD))
def test_run_rejects_before_the_logdir_exists(case, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)  # Whatever is written, it lands in here.
  logdir = tmp_path / 'run'
  result = CliRunner().invoke(cli.cli, ['run', *_args(case), '--logdir', str(logdir)])
  _assert_one_line_error(result, BAD[case][1])
  assert not logdir.exists()
  assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())


@pytest.mark.parametrize('case', ['enum clip_rewards', 'enum replay compression',
                                  'output value'])
def test_run_without_logdir_creates_no_default_logdir(case, tmp_path, monkeypatch):
  # The agent is refused before any folder exists; a replay store or an output is
  # built inside the logdir, and a refused one removes `logdir/` as well.
  monkeypatch.chdir(tmp_path)
  result = CliRunner().invoke(cli.cli, ['run', *BASE, '-b', BAD[case][0]])
  _assert_one_line_error(result, BAD[case][1])
  assert list(tmp_path.iterdir()) == [], list(tmp_path.iterdir())


def test_run_into_an_existing_folder_keeps_it(tmp_path):
  # Only what the run made is removed: a folder the user made stays, empty.
  logdir = tmp_path / 'runs' / 'one'
  (tmp_path / 'runs').mkdir()
  result = CliRunner().invoke(
      cli.cli, ['run', *BASE, '-b', BAD['enum replay compression'][0], '--logdir',
                str(logdir)])
  _assert_one_line_error(result, ['compression'])
  assert list(tmp_path.iterdir()) == [tmp_path / 'runs']
  assert list((tmp_path / 'runs').iterdir()) == []


def test_config_check_of_a_good_config_says_ok_and_writes_nothing(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  result = CliRunner().invoke(cli.cli, ['config', '--check', *BASE])
  assert result.exit_code == 0, (result.output, result.exception)
  lines = result.stdout.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('OK'), result.stdout
  assert 'gym:CartPole-v1' in lines[0]
  assert list(tmp_path.iterdir()) == []


def test_config_check_of_a_file_names_the_file_and_line(tmp_path):
  bad = tmp_path / 'bad.gin'
  bad.write_text(f"include '{PIPELINES / 'cartpole_dreamerv2.gin'}'\n"
                 "include '{}'\n\nWorldModel.clip_rewards = 'tanhh'\n".format(
                     PIPELINES / 'debug.gin'))
  result = CliRunner().invoke(cli.cli, ['config', '--check', str(bad)])
  _assert_one_line_error(result, [f'{bad}:4', 'tanh, identity, sign'])


# validate.py, without the CLI: what the constructors' messages are made of.


def test_a_scoped_component_names_its_binding_with_the_scope():
  import gin
  from dreamkit.networks import heads

  @gin.configurable
  def owner(head):
    return head(())

  gin.parse_config("owner.head = @reward/heads.MLPHead\n"
                   "heads.MLPHead.layers = 1\nreward/heads.MLPHead.units = 0")
  with pytest.raises(ConfigError) as refused:
    owner()  # pylint: disable=no-value-for-parameter
  assert str(refused.value).startswith(
      'reward/heads.MLPHead.units must be a whole number (positive, at least 1), got 0.')


def test_a_subclass_is_named_as_registered_or_as_its_registered_base():
  from dreamkit import validate
  from dreamkit.networks import heads

  class Unregistered(heads.MLPHead):
    pass

  assert validate.gin_name(heads.MLPHead) == 'heads.MLPHead'
  assert validate.gin_name(Unregistered) == 'heads.MLPHead'
  from dreamkit.envs import ParallelEnvs
  from dreamkit.world_model import WorldModel
  assert validate.gin_name(ParallelEnvs) == 'envs.ParallelEnvs'
  assert validate.gin_name(WorldModel) == 'WorldModel'


@pytest.mark.parametrize('check, value, words', [
    ('positive_int', 0, 'positive, at least 1'), ('positive_int', 2.5, 'whole number'),
    ('positive_int', True, 'whole number'), ('positive_int', float('nan'), 'whole number'),
    ('non_negative_int', -1, '0 or more'), ('fraction', 1.5, 'in [0, 1]'),
    ('positive', 0, '> 0'), ('weight_decay', 1.0, 'in [0, 1)'),
    ('boolean', 'False', 'True or False'), ('boolean', 1, 'True or False'),
    ('text', '  ', 'non-empty string'), ('regex', '([', 'regex'),
    ('sizes', 'ab', 'positive whole numbers'), ('sizes', (3, -1), 'positive whole numbers'),
    ('optional_seed', -3, '0 or more'), ('schedule', 'linear(1,0)', 'linear(start,end,steps)'),
])
def test_each_check_refuses_with_the_binding_and_what_is_accepted(check, value, words):
  from dreamkit import validate
  with pytest.raises(ConfigError) as refused:
    getattr(validate, check)(value, 'kind.Name.parameter')
  message = str(refused.value)
  assert message.startswith('kind.Name.parameter ') and words in message, message
  assert len(message.splitlines()) == 1


def test_checks_pass_good_values_through():
  import numpy as np
  from dreamkit import validate
  assert validate.positive_int(1e5, 'x') == 100000
  assert validate.non_negative_int(0, 'x') == 0
  assert validate.boolean(np.bool_(True), 'x') is True
  assert validate.sizes([4, 4.0], 'x') == (4, 4)
  assert validate.weight_decay(None, 'x') == 0 and validate.clip_norm(0, 'x') == 0
  assert validate.optional_seed(None, 'x') is None
  assert validate.one_of('tanh', 'x', ('tanh', 'sign')) == 'tanh'
  assert float(validate.schedule('linear(1,0,10)', 'x')(5)) == pytest.approx(0.5)


def test_choices_are_quoted_only_when_they_mix_strings_and_numbers():
  from dreamkit import validate
  with pytest.raises(ConfigError, match=r"one of: tanh, sign; got 'x'\."):
    validate.one_of('x', 'a.b', ('tanh', 'sign'))
  with pytest.raises(ConfigError, match=r"one of: 32, 16, 'bf16'; got 8\."):
    validate.one_of(8, 'a.b', (32, 16, 'bf16'))
  with pytest.raises(ConfigError, match=r'must be an activation, one of: elu'):
    validate.one_of(True, 'a.b', ('elu',), 'an activation')
