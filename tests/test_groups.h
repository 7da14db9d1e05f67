/* One line per test group; each group is a function TP(name) in tests/test_all.c's includes. */
TEST_GROUP(test_core)
TEST_GROUP(test_ops)
TEST_GROUP(test_npy)
TEST_GROUP(test_compare)
TEST_GROUP(test_optim)
TEST_GROUP(test_ckpt)
TEST_GROUP(test_hc)
TEST_GROUP(test_gpt)
