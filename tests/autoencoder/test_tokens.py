import numpy as np
import pytest
import torch

from avatarlm.autoencoder.tokens import grid_to_tokens, tokens_to_grid


def test_tokens_are_row_major_cells_and_round_trip():
    grid = torch.arange(2 * 3 * 2 * 4, dtype=torch.float32).reshape(2, 3, 2, 4)  # (B, C, h, w)
    tokens = grid_to_tokens(grid)
    assert tokens.shape == (2, 8, 3)
    torch.testing.assert_close(tokens[1, 5], grid[1, :, 1, 1])  # token 5 = cell (5 // 4, 5 % 4)
    torch.testing.assert_close(tokens_to_grid(tokens, 2, 4), grid)
    arr = np.random.default_rng(0).normal(size=(5, 3, 2, 2))
    np.testing.assert_array_equal(tokens_to_grid(grid_to_tokens(arr), 2, 2), arr)


def test_wrong_shapes_are_refused():
    with pytest.raises(ValueError, match="latent grids"):
        grid_to_tokens(torch.zeros(4, 4))
    with pytest.raises(ValueError, match="for a 2x2 grid"):
        tokens_to_grid(torch.zeros(5, 3), 2, 2)
