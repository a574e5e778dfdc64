"""Schedule strings parse, evaluate and fail loudly."""

import numpy as np
import pytest
import tensorflow as tf

from dreamkit import schedules
from dreamkit.errors import UserError


@pytest.mark.parametrize('spec, step, expected', [
    (0.003, 10, 0.003),
    (2, 10, 2.0),
    ('3e-4', 10, 3e-4),
    ('linear(0.1,0,100)', 0, 0.1),
    ('linear(0.1,0,100)', 50, 0.05),
    ('linear(0.1,0,100)', 100, 0.0),
    ('linear(0.1,0,100)', 1000, 0.0),
    ('linear(0.1, 0, 2.5e6)', 1.25e6, 0.05),
    ('warmup(10,0.5)', 0, 0.0),
    ('warmup(10,0.5)', 5, 0.25),
    ('warmup(10,0.5)', 20, 0.5),
    ('exp(1,0.1,10)', 0, 1.0),
    ('exp(1,0.1,10)', 10, 0.55),
])
def test_values(spec, step, expected):
  value = schedules.schedule(spec, step)
  assert value.dtype == tf.float32
  np.testing.assert_allclose(float(value), expected, rtol=1e-5, atol=1e-7)


def test_follows_variable_inside_tf_function():
  step = tf.Variable(0, dtype=tf.int64)
  parsed = schedules.parse('linear(1,0,10)')
  fn = tf.function(lambda: parsed(step))
  assert float(fn()) == pytest.approx(1.0)
  step.assign(5)
  # Read from the variable at run time, not frozen at trace time.
  assert float(fn()) == pytest.approx(0.5)
  step.assign(50)
  assert float(fn()) == pytest.approx(0.0)


@pytest.mark.parametrize('spec', [
    'linear(0.1,0)', 'lin(0.1,0,10)', 'fast', 'warmup(0,1)', 'linear(a,b,c)', None, True])
def test_bad_specs_name_the_string_and_the_forms(spec):
  with pytest.raises(UserError) as info:
    schedules.parse(spec, name='ActorCritic.actor_ent')
  message = str(info.value)
  assert 'ActorCritic.actor_ent' in message
  assert str(spec) in message
  if spec != 'warmup(0,1)':
    assert 'linear(start,end,steps)' in message
