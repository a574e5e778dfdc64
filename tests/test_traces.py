"""Each compiled function of the agent traces once over many calls (issue 15).

A trace costs seconds at these tiny sizes and tens of seconds at Atari's, so a retrace
is as costly as a slow update. The usual causes: a first call that creates variables
(tf.function then traces a second time; Agent.create_variables builds them first), a
state that is None on the first call and a tensor later, Python numbers where tensors
are meant, shapes or dtypes that change between calls.

`mode` is a Python string argument of the policy function, so each mode has a trace
of its own (its branch only: 'eval' takes the actor's mode, 'train' samples it,
'explore' samples the explorer's actor); what must hold is one trace per mode.
"""

import numpy as np
import pytest

import test_agent as tiny

CALLS = 4  # calls of each kind, the first included


def traces(function):
  return function.experimental_get_tracing_count()


@pytest.fixture(scope='module')
def agent():
  """A fresh tiny agent (image and vector keys), compiled: nothing traced yet."""
  return tiny.make_agent(tiny.DISCRETE, image=True)


def test_policy_traces_once_per_mode(agent):
  space = tiny.obs_space(image=True)
  for modes, mode in enumerate(('train', 'eval', 'explore'), 1):
    state = None  # The first call builds the initial state; later calls carry it.
    for call in range(CALLS):
      obs = tiny.random_steps(space, tiny.DISCRETE, (tiny.N,), seed=call)
      obs['is_first'][:] = call == 0
      outputs, state = agent.policy(obs, state, mode)
      assert outputs['action'].shape == (tiny.N, 3)
      assert traces(agent._policy_fn) == modes, (mode, call)


def test_train_traces_once(agent):
  space = tiny.obs_space(image=True)
  state = None  # Zeros on the first update, the last posterior after.
  for call in range(CALLS):
    batch = tiny.random_steps(space, tiny.DISCRETE, (tiny.B, tiny.T), seed=call)
    state, metrics = agent.train(batch, state)
    assert np.isfinite(float(metrics['model_loss']))
    assert traces(agent._train_fn) == 1, call
    # The world model's own tf.function, traced inside the agent's.
    assert traces(agent.world_model._train) == 1, call


def test_policy_keeps_its_traces_after_training(agent):
  """Training created no variable the policy reads: no retrace of any mode."""
  before = traces(agent._policy_fn)
  obs = tiny.random_steps(tiny.obs_space(image=True), tiny.DISCRETE, (tiny.N,))
  obs['is_first'][:] = True
  for mode in ('train', 'eval', 'explore'):
    agent.policy(obs, None, mode)
  assert traces(agent._policy_fn) == before


def test_report_traces_once(agent):
  space = tiny.obs_space(image=True)
  for call in range(2):
    agent.report(tiny.random_steps(space, tiny.DISCRETE, (tiny.B, tiny.T), seed=call))
    assert traces(agent.world_model._video_pred) == 1, call



def test_plan2explore_agent_trains_with_one_trace():
  """The explorer builds its ensemble and actor-critic first (create_variables)."""
  agent = tiny.make_agent(tiny.BOX, image=False, bindings="""
Pipeline.explorer = @explorers.Plan2Explore
explorers.Plan2Explore.disag_models = 2
expl_head/heads.MLPHead.units = 8
""")
  space = tiny.obs_space(image=False)
  state = None
  for call in range(2):
    batch = tiny.random_steps(space, tiny.BOX, (tiny.B, tiny.T), seed=call)
    state, metrics = agent.train(batch, state)
    assert traces(agent._train_fn) == 1, call
  assert 'expl_ensemble_loss' in metrics, sorted(metrics)  # The explorer trained.
