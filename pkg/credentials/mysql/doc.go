// Package mysql rotates MySQL and MariaDB database users, either one user
// changing its own password (SingleUser) or two users taking turns under an
// admin secret (MultiUser).
package mysql
