// Package redis rotates Redis and Valkey users that hold more than one
// password at a time, so rotation has no downtime: redis-acl (a
// self-managed server's ACL user, through ACL SETUSER) and
// elasticache-user (an ElastiCache RBAC user, through the ElastiCache
// API's ModifyUser). Both keep exactly two passwords valid while a
// rotation runs, AWSCURRENT's and AWSPENDING's, and change nothing else
// about the user. See docs/redis.md.
package redis
