package app

import "github.com/rotary-secrets/rotary/infra/rotary"

// The registry's types, by name, for the tests.
const (
	randomSecret       rotary.FunctionType = "random-secret"
	postgresSingleUser rotary.FunctionType = "postgres-single-user"
	postgresMultiUser  rotary.FunctionType = "postgres-multi-user"
	postgresExpiring   rotary.FunctionType = "postgres-expiring-user"
	mySQLSingleUser    rotary.FunctionType = "mysql-single-user"
	mySQLMultiUser     rotary.FunctionType = "mysql-multi-user"
	mySQLExpiring      rotary.FunctionType = "mysql-expiring-user"
	rdsMaster          rotary.FunctionType = "rds-master"
	redisACL           rotary.FunctionType = "redis-acl"
	elastiCacheUser    rotary.FunctionType = "elasticache-user"
)
