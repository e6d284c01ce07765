-- The row each instance locks (select ... for update) to order event inserts, ended sessions and revocations.
INSERT INTO `cred_locks` (`name`) VALUES ('order');
