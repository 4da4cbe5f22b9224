"""A sweep's pacing: the ``kept`` strategy's batch size (RET-3, ADR 0011) and a verification's page
slices shrink after a slow one and grow back after fast ones, within 1 and the caller's cap."""

from governance.sweep.pacing import TARGET_SECONDS, next_size


def test_a_slow_batch_halves_the_next_and_never_below_one_group():
    assert next_size(2_500, 2_500, TARGET_SECONDS * 3) == 1_250
    assert next_size(1, 2_500, 10.0) == 1


def test_fast_batches_double_up_to_the_most_and_a_batch_near_the_target_keeps_its_size():
    assert next_size(625, 2_500, TARGET_SECONDS / 4) == 1_250
    assert next_size(2_000, 2_500, 0.0) == 2_500
    assert next_size(1_000, 2_500, TARGET_SECONDS * 0.75) == 1_000
