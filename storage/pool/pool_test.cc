// Tests are added with the batch router's fake-transport suite.
