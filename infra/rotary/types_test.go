package rotary

// The registry's types, by name, for the tests.
const (
	RandomSecret       FunctionType = "random-secret"
	PostgresSingleUser FunctionType = "postgres-single-user"
	PostgresMultiUser  FunctionType = "postgres-multi-user"
	MySQLSingleUser    FunctionType = "mysql-single-user"
	MySQLMultiUser     FunctionType = "mysql-multi-user"
	ElastiCacheUser    FunctionType = "elasticache-user"
)
