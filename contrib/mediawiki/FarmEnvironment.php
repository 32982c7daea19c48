<?php
/**
 * The farm's configuration for LocalSettings.php and router.php: environment variables,
 * or a file named by FARM_MW_SETTINGS_FILE (the environment wins over the file).
 *
 * The file is either PHP returning an array (`<?php return [ 'FARM_MW_DB_USER' => 'wiki' ];`,
 * kept compiled by opcache), or lines of KEY=value (`#` starts a comment line; the value
 * is taken as is, surrounding single or double quotes removed; no variable expansion).
 * Secrets: a variable KEY_FILE names a file whose contents (trailing newline removed) are
 * KEY's value, e.g. FARM_MW_DB_PASSWORD_FILE=/run/secrets/wiki-db-password.
 *
 * No MediaWiki class is used here: router.php loads it before MediaWiki.
 */

final class WikiFarmEnvironment {
	/** @var array<string,string>|null */
	private static ?array $file = null;

	/** The repository's var/ folder, or FARM_DATA_DIR: the portal's data folder. */
	public static function dataDir(): string {
		return rtrim( self::get( 'FARM_DATA_DIR' ) ?? dirname( __DIR__, 2 ) . '/var', '/' );
	}

	/** The portal's export folder: FARM_EXPORT_DIR, else <data dir>/exports. */
	public static function exportDir(): string {
		return rtrim( self::get( 'FARM_EXPORT_DIR' ) ?? self::dataDir() . '/exports', '/' );
	}

	/** MediaWiki's own state (secret key, caches): FARM_MW_STATE_DIR, else <data dir>/mediawiki. */
	public static function stateDir(): string {
		return rtrim( self::get( 'FARM_MW_STATE_DIR' ) ?? self::dataDir() . '/mediawiki', '/' );
	}

	/** A setting: the environment, else the settings file, else $default. Empty = unset. */
	public static function get( string $key, ?string $default = null ): ?string {
		$value = getenv( $key );
		if ( is_string( $value ) && $value !== '' ) {
			return $value;
		}
		$value = self::file()[$key] ?? null;
		return is_string( $value ) && $value !== '' ? $value : $default;
	}

	/** A secret: KEY, else the contents of the file KEY_FILE names, else null. */
	public static function secret( string $key ): ?string {
		$value = self::get( $key );
		if ( $value !== null ) {
			return $value;
		}
		$path = self::get( "{$key}_FILE" );
		if ( $path === null ) {
			return null;
		}
		$contents = @file_get_contents( $path );
		if ( $contents === false ) {
			throw new RuntimeException( "{$key}_FILE names a file that cannot be read: $path" );
		}
		return rtrim( $contents, "\r\n" );
	}

	public static function bool( string $key, bool $default = false ): bool {
		$value = self::get( $key );
		return $value === null ? $default
			: in_array( strtolower( $value ), [ '1', 'true', 'yes', 'on' ], true );
	}

	/** @return array<string,string> */
	private static function file(): array {
		if ( self::$file !== null ) {
			return self::$file;
		}
		self::$file = [];
		$path = getenv( 'FARM_MW_SETTINGS_FILE' );
		if ( !is_string( $path ) || $path === '' ) {
			return self::$file;
		}
		if ( !is_readable( $path ) ) {
			throw new RuntimeException( "FARM_MW_SETTINGS_FILE cannot be read: $path" );
		}
		if ( str_ends_with( $path, '.php' ) ) {
			$data = require $path;
			if ( !is_array( $data ) ) {
				throw new RuntimeException( "FARM_MW_SETTINGS_FILE must return an array: $path" );
			}
			foreach ( $data as $key => $value ) {
				if ( is_scalar( $value ) ) {
					self::$file[(string)$key] = is_bool( $value ) ? ( $value ? '1' : '0' )
						: (string)$value;
				}
			}
			return self::$file;
		}
		foreach ( file( $path, FILE_IGNORE_NEW_LINES ) as $line ) {
			$line = trim( $line );
			if ( $line === '' || $line[0] === '#' || !str_contains( $line, '=' ) ) {
				continue;
			}
			[ $key, $value ] = array_map( 'trim', explode( '=', $line, 2 ) );
			if ( str_starts_with( $key, 'export ' ) ) {
				$key = trim( substr( $key, 7 ) );
			}
			if ( strlen( $value ) >= 2 && ( $value[0] === '"' || $value[0] === "'" )
				&& substr( $value, -1 ) === $value[0]
			) {
				$value = substr( $value, 1, -1 );
			}
			self::$file[$key] = $value;
		}
		return self::$file;
	}
}
