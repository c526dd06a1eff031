from tests.autogen.conftest import provider_key

__all__ = ["provider_key"]
