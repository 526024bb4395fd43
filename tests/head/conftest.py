import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    """The head tests run tiny ops, for which a second thread only adds synchronisation cost."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
